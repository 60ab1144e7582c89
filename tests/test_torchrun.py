"""The train command under a real torchrun with two gloo processes, against one process.

This is the command line the scaling chapter prints for many GPUs, run on
CPU: torchrun starts the processes and sets their ranks, and the command
joins the process group itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

TRAIN = ["-m", "medgap_utils", "train", "--profile", "ci", "--loss", "clip_atp_cu", "--epochs", "1",
         "--batch-size", "64", "--no-progress"]


def run_train(launcher: list[str], directory: Path) -> subprocess.CompletedProcess:
    # Each run gets its own cache, so the second one trains instead of loading the first one's checkpoint.
    env = dict(os.environ, MEDGAP_CACHE=str(directory / "cache"), OMP_NUM_THREADS="1")
    return subprocess.run([*launcher, *TRAIN, "--output", str(directory / "output")], env=env, cwd=directory,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.fail("torchrun is not installed next to this Python; torch installs it with the package")
    results = {}
    for name, launcher in (("one process", [sys.executable]),
                           ("torchrun", [torchrun, "--standalone", "--nproc_per_node=2"])):
        directory = tmp_path_factory.mktemp(name.replace(" ", "-"))
        results[name] = (run_train(launcher, directory), directory)
    return results


def final_record(directory: Path) -> dict:
    return json.loads((directory / "output" / "history.json").read_text(encoding="utf-8"))[-1]


@pytest.mark.parametrize("name", ["one process", "torchrun"])
def test_train_command_succeeds(runs, name):
    completed, _ = runs[name]
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_torchrun_matches_one_process(runs):
    single, parallel = (final_record(runs[name][1]) for name in ("one process", "torchrun"))
    for key in ("train_loss", "train_loss_clip", "train_loss_atp", "train_loss_cu", "val_modality_gap",
                "val_true_pair_cosine"):
        assert parallel[key] == pytest.approx(single[key], rel=1e-5, abs=1e-6), key


def test_torchrun_reports_once(runs):
    completed, _ = runs["torchrun"]
    assert completed.stdout.count("checkpoint: ") == 1
    assert completed.stderr.count("epoch 1/1: loss") == 1
    assert "Saving the dataset" not in completed.stderr
