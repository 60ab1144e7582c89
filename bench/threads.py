"""Thread settings under load: one training step of the CPU preset with one thread and with every core.

torch runs CPU operators on an OpenMP thread team, one thread per usable
core by default. The GNU OpenMP runtime that ships with torch (``libgomp``) lets
waiting threads spin for a while before they sleep. When
other processes keep the cores busy, a spinning or descheduled team member
delays every operator, which matters for the tiny towers: each step runs
thousands of small operators. Each setting runs in a fresh process, because
the wait policy is read when the OpenMP runtime starts:

- one thread;
- one thread per usable core, the default;
- one thread per usable core with ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep).

The load average is recorded with each setting, because this comparison
measures the machine's contention as much as the code. There is no goal.

Usage: python bench/threads.py [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import harness

NAME = "threads"


def run_worker(args: argparse.Namespace) -> int:
    """Time training steps in this process and print their seconds as JSON."""
    import torch

    from medgap_utils.config import experiment_config
    from medgap_utils.losses import GapClosingLoss
    from medgap_utils.models import build_model

    torch.set_num_threads(args.worker_threads)
    torch.manual_seed(0)
    config = experiment_config("clip", profile="cpu")
    batch_size = 16 if args.tiny else config.train.batch_size
    model = build_model(config).train()
    loss_function = GapClosingLoss.from_config(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    images = torch.randn(batch_size, 3, config.data.image_size, config.data.image_size)
    texts = model.tokenizer([f"axial ct of the chest with a {i} mm nodule in the right upper lobe"
                             for i in range(batch_size)])
    times = harness.training_step_seconds(model, loss_function, optimizer, [(images, texts)] * args.steps)
    print(json.dumps({"step_seconds": times, "batch_size": batch_size}))
    return 0


def run_setting(threads: int, wait_policy: str | None, args: argparse.Namespace) -> dict:
    """Run the worker in a fresh process with ``threads`` threads and the given OpenMP wait policy."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy is not None:
        env["OMP_WAIT_POLICY"] = wait_policy
    command = [sys.executable, __file__, "--worker", "--worker-threads", str(threads), "--steps", str(args.steps)]
    if args.tiny:
        command.append("--tiny")
    load_before = harness.load_average()
    output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    record = json.loads(output.strip().splitlines()[-1])
    median = statistics.median(record["step_seconds"])
    print(f"{threads} thread(s), OMP_WAIT_POLICY={wait_policy or 'unset'}: {median:.3f} s per step")
    return {"threads": threads, "omp_wait_policy": wait_policy, "load_average_before": load_before,
            "median_step_seconds": median, **record}


def main() -> int:
    parser = harness.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per setting (default: 8; tiny: 2)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = args.steps or (2 if args.tiny else 8)
    if args.worker:
        return run_worker(args)
    started, load_at_start = harness.start(args)

    import torch

    cores = args.threads or torch.get_num_threads()
    settings_run = [(1, None), (cores, None), (cores, "PASSIVE")]
    if cores == 1:
        settings_run.remove((cores, None))
    results = [run_setting(threads, policy, args) for threads, policy in settings_run]
    one_thread = results[0]["median_step_seconds"]
    measurements = {
        "settings": results,
        "default_over_one_thread": results[-2]["median_step_seconds"] / one_thread,
        "passive_over_one_thread": results[-1]["median_step_seconds"] / one_thread,
    }
    settings = {"steps": args.steps, "cores": cores, "preset": "cpu profile, tiny towers"}
    harness.write_result(NAME, args, started, load_at_start, settings, measurements, goals=[])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
