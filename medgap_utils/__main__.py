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


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="python -m medgap_utils",
        description="Train, evaluate and benchmark image-text models for the medgap book.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    profile = commands.add_parser("profile", help="print the active run-time profile and the cache directory")
    profile.add_argument("--profile", choices=["ci", "cpu", "gpu", "paper"], default=None,
                         help="profile to show (default: $MEDGAP_PROFILE, else the hardware's)")
    profile.set_defaults(handler=_show_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
