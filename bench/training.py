"""Training-loop overhead and heads-only speed, measured on the CPU preset.

1. ``medgap_utils.training.fit`` trains the end-to-end CPU preset (tiny
   towers, the ``cpu`` profile's corpus and batch size). A hand-written loop
   trains a fresh model of the same config on the same batches (the same
   shuffled order, loader, transform and tokenizer) with the same math:
   forward, ``GapClosingLoss``, backward, gradient clipping, AdamW. The
   ratio of their seconds per epoch is fit's overhead. The hand-written loop
   runs before and after fit, so a change in machine load affects both. Its
   seconds per step on batches already in memory give the share of data
   loading.
2. The towers of the trained model encode the training and validation
   splits once, and fit trains the heads alone on those cached features.
   The ratio of an end-to-end epoch to a heads-only epoch is the heads-only
   speedup.

Seconds per epoch come from fit's history (``seconds``: the training steps
of one epoch, without the validation pass and the checkpoint). The first
epoch of each run is not used, because it includes warm-up.

Usage: python bench/training.py [--tiny]
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

import harness

NAME = "training"


def make_config(tiny: bool, epochs: int):
    """Return the end-to-end CPU preset (or a few-second version of it) with ``epochs`` epochs."""
    from medgap_utils.config import experiment_config

    if tiny:
        return experiment_config("clip", profile="ci", **{"train.epochs": epochs, "data.sizes": (32, 16, 16),
                                                          "train.batch_size": 16, "train.snapshot_size": 16})
    return experiment_config("clip", profile="cpu", **{"train.epochs": epochs})


def epoch_loader(config, model, train, epoch: int):
    """Return the loader of fit's batches for one epoch: the same order, transform and tokenizer."""
    from medgap_utils.data import make_dataloader
    from medgap_utils.training.distributed import DistributedContext, epoch_batches

    batches = epoch_batches(len(train), config.train.batch_size, config.train.seed, epoch, DistributedContext())
    subset = train.select(torch.cat(batches).tolist())
    return make_dataloader(subset, len(batches[0]), transform=model.image_transform(train=config.data.augment),
                           tokenizer=model.tokenizer, shuffle=False, seed=config.train.seed + epoch,
                           num_workers=config.train.num_workers, drop_last=True)


class HandWrittenLoop:
    """A plain torch training loop with fit's math and none of its bookkeeping."""

    def __init__(self, config) -> None:
        from medgap_utils.losses import GapClosingLoss
        from medgap_utils.models import build_model
        from medgap_utils.training import seed_everything

        seed_everything(config.train.seed)
        self.config = config
        self.model = build_model(config).train()
        self.loss = GapClosingLoss.from_config(config.loss)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.train.lr,
                                           weight_decay=config.train.weight_decay)

    def step(self, images: torch.Tensor, texts: torch.Tensor) -> None:
        image_embeddings, text_embeddings = self.model(images, texts)
        loss = self.loss(image_embeddings, text_embeddings, self.model.logit_scale.exp()).total

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        self.optimizer.step()

    def epoch_seconds(self, train, epochs: int) -> list[float]:
        """Train ``epochs`` epochs on fit's batches and return the seconds of each."""
        times = []
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            for batch in epoch_loader(self.config, self.model, train, epoch):
                self.step(batch["images"], batch["texts"])
            times.append(time.perf_counter() - started)
        return times

    def step_seconds_in_memory(self, train, steps: int) -> list[float]:
        """Return the seconds of each of ``steps`` steps on batches already loaded into memory."""
        batches = [(batch["images"], batch["texts"]) for batch in epoch_loader(self.config, self.model, train, 1)]
        times = []
        for index in range(steps):
            images, texts = batches[index % len(batches)]
            started = time.perf_counter()
            self.step(images, texts)
            times.append(time.perf_counter() - started)
        return times


def heads_only_epochs(config, model, corpus, epochs: int, run_dir: Path) -> tuple[list[float], float]:
    """Cache tower features with ``model``, train the heads alone, and return (seconds per epoch, caching seconds)."""
    from medgap_utils.config import ExperimentConfig, experiment_config
    from medgap_utils.models import encode_features
    from medgap_utils.training import fit

    started = time.perf_counter()
    features = {split: encode_features(model, corpus[split], batch_size=256, num_workers=config.train.num_workers,
                                       progress=False)
                for split in ("train", "validation")}
    caching_seconds = time.perf_counter() - started

    # The heads-only preset's optimization settings, without its backbone run: the features come from ``model``.
    preset = experiment_config("clip", profile="cpu", mode="heads_only")
    train = dataclasses.replace(preset.train, epochs=epochs, batch_size=config.train.batch_size,
                                snapshot_size=config.train.snapshot_size)
    heads_config = ExperimentConfig(data=config.data, model=config.model, loss=config.loss, train=train,
                                    name="heads-only benchmark")
    result = fit(heads_config, features=features, run_dir=run_dir, progress=False, device="cpu")
    return [record["seconds"] for record in result.history[1:]], caching_seconds


def main() -> int:
    parser = harness.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--fit-epochs", type=int, default=None,
                        help="epochs of the fit run; all but the first are timed (default: 4; tiny: 2)")
    parser.add_argument("--loop-epochs", type=int, default=None,
                        help="epochs of each of the two hand-written runs (default: 3; tiny: 2)")
    parser.add_argument("--heads-epochs", type=int, default=None,
                        help="epochs of the heads-only run (default: 10; tiny: 3)")
    args = parser.parse_args()
    fit_epochs = args.fit_epochs or (2 if args.tiny else 4)
    loop_epochs = args.loop_epochs or (2 if args.tiny else 3)
    heads_epochs = args.heads_epochs or (3 if args.tiny else 10)
    started, load_at_start = harness.start(args)

    from medgap_utils.data import load_phantom_corpus
    from medgap_utils.training import fit

    config = make_config(args.tiny, fit_epochs)
    corpus = load_phantom_corpus(seed=config.data.seed, sizes=config.data.sizes, image_size=config.data.image_size)
    steps_per_epoch = config.data.sizes[0] // config.train.batch_size

    with tempfile.TemporaryDirectory(prefix="medgap-bench-") as scratch:
        loop = HandWrittenLoop(config)
        loop_before = loop.epoch_seconds(corpus["train"], loop_epochs)
        print(f"hand-written loop: {[round(t, 2) for t in loop_before]} s per epoch")

        result = fit(config, corpus=corpus, run_dir=Path(scratch) / "end-to-end", progress=False, device="cpu")
        fit_times = [record["seconds"] for record in result.history[1:]]
        print(f"fit: {[round(t, 2) for t in fit_times]} s per epoch")

        loop = HandWrittenLoop(config)
        loop_after = loop.epoch_seconds(corpus["train"], loop_epochs)
        in_memory = loop.step_seconds_in_memory(corpus["train"], steps_per_epoch)
        print(f"hand-written loop: {[round(t, 2) for t in loop_after]} s per epoch")

        heads_times, caching_seconds = heads_only_epochs(config, result.model, corpus, heads_epochs,
                                                         Path(scratch) / "heads-only")
        print(f"heads-only fit: {[round(t, 4) for t in heads_times]} s per epoch")

    fit_epoch = statistics.mean(fit_times[1:])
    loop_epoch = statistics.mean(loop_before[1:] + loop_after[1:])
    heads_epoch = statistics.median(heads_times[1:])
    in_memory_step = statistics.median(in_memory[1:])
    measurements = {
        "steps_per_epoch": steps_per_epoch,
        "fit_epoch_seconds": fit_times,
        "loop_epoch_seconds_before_fit": loop_before,
        "loop_epoch_seconds_after_fit": loop_after,
        "loop_step_seconds_in_memory": in_memory,
        "heads_only_epoch_seconds": heads_times,
        "feature_caching_seconds": caching_seconds,
        "fit_over_loop": fit_epoch / loop_epoch,
        "loading_share_of_loop_step": 1 - in_memory_step / (loop_epoch / steps_per_epoch),
        "end_to_end_over_heads_only": fit_epoch / heads_epoch,
        "feature_caching_in_end_to_end_epochs": caching_seconds / fit_epoch,
    }
    goals = [
        harness.goal("fit epoch / hand-written loop epoch", measurements["fit_over_loop"], 1.10, "max"),
        harness.goal("end-to-end epoch / heads-only epoch", measurements["end_to_end_over_heads_only"], 50, "min"),
    ]
    settings = {"config": config.to_dict(), "fit_epochs": fit_epochs, "loop_epochs": loop_epochs,
                "heads_epochs": heads_epochs}
    harness.write_result(NAME, args, started, load_at_start, settings, measurements, goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
