"""Input pipeline: phantom generation throughput and data loading against the model's step rate.

- Generation: ``medgap_utils.data.corpus.generate_split`` renders phantoms,
  encodes them as PNG and writes their captions; pairs per second.
- Loading: one epoch of ``make_dataloader`` over the training split with the
  CPU preset's transform and tokenizer (PNG decoding, resizing, normalizing,
  tokenizing, collating); pairs per second. It runs with no worker process,
  the default on up to 2 cores, and with one. Its two parts, the image
  transform and the tokenizer, are also timed alone.
- Consumption: training steps of the CPU preset (forward, loss, backward,
  AdamW) on batches already in memory; pairs per second.

The goal is loading at least 3x faster than the model consumes.

Usage: python bench/input_pipeline.py [--tiny]
"""

from __future__ import annotations

import statistics
import time

import torch

import harness

NAME = "input_pipeline"


def generation_rate(count: int, image_size: int, seed: int) -> dict:
    """Return the seconds and pairs per second of generating ``count`` phantom pairs."""
    from medgap_utils.data.corpus import generate_split

    started = time.perf_counter()
    generate_split(count, seed, "train", image_size)
    seconds = time.perf_counter() - started
    return {"pairs": count, "seconds": seconds, "pairs_per_second": count / seconds}


def loading_rate(config, model, train, num_workers: int, augment: bool) -> dict:
    """Return the pairs per second of the second of two epochs through ``make_dataloader``."""
    from medgap_utils.data import make_dataloader

    loader = make_dataloader(train, config.train.batch_size, transform=model.image_transform(train=augment),
                             tokenizer=model.tokenizer, shuffle=True, seed=config.train.seed,
                             num_workers=num_workers, drop_last=True)
    # The first epoch starts the worker processes; with persistent workers the second one reuses them.
    epochs = []
    for _ in range(2):
        started, pairs = time.perf_counter(), 0
        for batch in loader:
            pairs += batch["images"].shape[0]
        epochs.append({"pairs": pairs, "seconds": time.perf_counter() - started})
    return {"num_workers": num_workers, "augment": augment, "epochs": epochs,
            "pairs_per_second": epochs[-1]["pairs"] / epochs[-1]["seconds"]}


def part_rates(model, train) -> dict:
    """Return pairs per second of the image transform alone and of the tokenizer alone, over the split."""
    transform = model.image_transform(train=False)
    images = train["image"]
    started = time.perf_counter()
    for image in images:
        transform(image)
    transform_seconds = time.perf_counter() - started

    captions = train["caption"]
    started = time.perf_counter()
    model.tokenizer(captions)
    tokenizer_seconds = time.perf_counter() - started
    return {"image_transform_pairs_per_second": len(images) / transform_seconds,
            "tokenizer_pairs_per_second": len(captions) / tokenizer_seconds}


def consumption_rate(config, model, train, steps: int) -> dict:
    """Return the seconds of training steps on in-memory batches, and pairs per second (median step)."""
    from medgap_utils.data import make_dataloader
    from medgap_utils.losses import GapClosingLoss

    loader = make_dataloader(train, config.train.batch_size, transform=model.image_transform(train=False),
                             tokenizer=model.tokenizer, shuffle=True, seed=config.train.seed, num_workers=0,
                             drop_last=True)
    batches = []
    for batch in loader:
        batches.append((batch["images"], batch["texts"]))
        if len(batches) == steps:
            break
    loss_function = GapClosingLoss.from_config(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    model.train()
    times = harness.training_step_seconds(model, loss_function, optimizer, batches)
    return {"step_seconds": times, "pairs_per_second": config.train.batch_size / statistics.median(times)}


def main() -> int:
    parser = harness.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--generate", type=int, default=None,
                        help="phantom pairs to generate (default: 2048; tiny: 64)")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed training steps (default: 12; tiny: 2)")
    args = parser.parse_args()
    generate = args.generate or (64 if args.tiny else 2048)
    steps = args.steps or (2 if args.tiny else 12)
    started, load_at_start = harness.start(args)

    from medgap_utils.config import experiment_config
    from medgap_utils.data import default_num_workers, load_phantom_corpus
    from medgap_utils.models import build_model

    if args.tiny:
        config = experiment_config("clip", profile="ci", **{"data.sizes": (32, 16, 16), "train.batch_size": 16})
    else:
        config = experiment_config("clip", profile="cpu")
    generation = generation_rate(generate, config.data.image_size, seed=1)
    print(f"generation: {generation['pairs_per_second']:.0f} pairs/s")

    train = load_phantom_corpus(seed=config.data.seed, sizes=config.data.sizes,
                                image_size=config.data.image_size)["train"]
    model = build_model(config)
    default_workers = default_num_workers()
    # A worker process takes seconds to start, so the tiny run tries only the default.
    worker_counts = [default_workers] if args.tiny else sorted({0, 1, default_workers})
    loading = [loading_rate(config, model, train, workers, augment=False) for workers in worker_counts]
    loading.append(loading_rate(config, model, train, default_workers, augment=True))
    for record in loading:
        print(f"loading, {record['num_workers']} workers, augment={record['augment']}: "
              f"{record['pairs_per_second']:.0f} pairs/s")
    parts = part_rates(model, train)
    consumption = consumption_rate(config, model, train, steps)
    print(f"training steps consume {consumption['pairs_per_second']:.0f} pairs/s")

    default_loading = next(record for record in loading
                           if record["num_workers"] == default_workers and not record["augment"])
    ratio = default_loading["pairs_per_second"] / consumption["pairs_per_second"]
    measurements = {"generation": generation, "loading": loading, "parts": parts, "consumption": consumption,
                    "default_num_workers": default_workers, "loading_over_consumption": ratio}
    goals = [harness.goal(f"loading / consumption ({default_workers} workers)", ratio, 3.0, "min")]
    settings = {"config": config.to_dict(), "generated_pairs": generate, "steps": steps}
    harness.write_result(NAME, args, started, load_at_start, settings, measurements, goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
