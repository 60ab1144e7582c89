"""Command-line interface: ``python -m medgap_utils COMMAND`` (or ``medgap COMMAND``).

Each subcommand lives with the module that owns its work; this file only
wires them into one parser.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _show_profile(args: argparse.Namespace) -> int:
    from medgap_utils.config import cache_dir, get_profile

    profile = get_profile(args.profile)
    print(f"profile: {profile.name}")
    for field, value in vars(profile).items():
        if field != "name":
            print(f"  {field}: {value}")
    print(f"cache directory: {cache_dir()}")
    return 0


def _write_student_copies(args: argparse.Namespace) -> int:
    from pathlib import Path

    from medgap_utils.book import write_student_copies

    paths = args.notebooks or sorted(p for p in Path("book").glob("*.ipynb") if not p.name.startswith("_"))
    if not paths:
        print("No chapter notebooks given and none found in ./book; pass notebook paths.", file=sys.stderr)
        return 2
    # Check every path before writing any copy, so a typo leaves no partial output.
    invalid = [str(path) for path in paths if Path(path).suffix != ".ipynb" or not Path(path).is_file()]
    if invalid:
        print(f"error: not chapter notebooks (.ipynb files that exist): {', '.join(invalid)}", file=sys.stderr)
        return 2
    for path in write_student_copies(paths, args.output):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="python -m medgap_utils",
        description="Train, evaluate and benchmark image-text models for the medgap book.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level and show the traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    profile = commands.add_parser("profile", help="print the active run-time profile and the cache directory")
    profile.add_argument("--profile", choices=["ci", "cpu", "gpu", "paper"], default=None,
                         help="profile to show (default: $MEDGAP_PROFILE, else the hardware's)")
    profile.set_defaults(handler=_show_profile)

    from medgap_utils.bench import add_bench_parser
    from medgap_utils.training.cli import add_train_parser

    add_train_parser(commands)
    add_bench_parser(commands)

    students = commands.add_parser(
        "student-copies",
        help="write copies of the chapters with solution cells removed and outputs cleared",
    )
    students.add_argument("notebooks", nargs="*", help="chapter notebooks (default: book/*.ipynb)")
    students.add_argument("--output", default="student", help="folder for the copies (default: ./student)")
    students.set_defaults(handler=_write_student_copies)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted: finished epochs and runs are saved in the cache, so running the same command "
              "again continues from there", file=sys.stderr)
        return 130
    except _user_errors() as error:
        # These errors carry a message that names the value and the fix, so a traceback only hides it.
        if args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        print("(put --verbose before the command to see the traceback)", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[BaseException], ...]:
    """Return the exception types that report bad input, a missing file or an unreachable hub."""
    from medgap_utils.training.checkpoints import CheckpointError

    # HubUnavailableError is a ConnectionError, so OSError covers an unreachable hub.
    return (ValueError, OSError, CheckpointError)


if __name__ == "__main__":
    sys.exit(main())
