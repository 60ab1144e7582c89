"""Captioning benchmark: models x settings x seeds, summarized as mean ± std, with example captions."""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from medgap_utils.captioning.decoder import DecoderConfig
from medgap_utils.captioning.evaluate import evaluate_captioning, shared_meteor
from medgap_utils.captioning.train import CAPDEC_NOISE_STD, captioner_key, train_captioner
from medgap_utils.config import cache_dir

LOGGER = logging.getLogger(__name__)

# Columns of the compact table the book and the benchmark runner print.
TABLE_METRICS = ("BLEU-4", "ROUGE-L", "CIDEr", "METEOR", "clinical accuracy", "clinical F1")


@dataclasses.dataclass(frozen=True)
class CaptioningSetting:
    """One way of training and testing a captioner on a model's embeddings.

    Attributes:
        name: row label in the tables.
        regime: ``"supervised"`` trains on image embeddings, ``"text_only"`` on
            the text embeddings of the training captions.
        noise_std: training noise (``CAPDEC_NOISE_STD`` for CapDec).
        test_input: ``"image"`` or ``"text"``: which test embeddings are captioned.
    """

    name: str
    regime: str
    noise_std: float = 0.0
    test_input: str = "image"

    def __post_init__(self) -> None:
        if self.regime not in ("supervised", "text_only"):
            raise ValueError(f"CaptioningSetting.regime must be 'supervised' or 'text_only', got {self.regime!r}")
        if self.test_input not in ("image", "text"):
            raise ValueError(f"CaptioningSetting.test_input must be 'image' or 'text', got {self.test_input!r}")


SUPERVISED = CaptioningSetting("supervised", "supervised")
TEXT_ONLY = CaptioningSetting("text-only", "text_only")
TEXT_ONLY_NOISE = CaptioningSetting("text-only + noise", "text_only", CAPDEC_NOISE_STD)
# The text-only decoder on test text embeddings: what it reaches without a gap.
TEXT_ONLY_CEILING = CaptioningSetting("text-only, text input", "text_only", 0.0, "text")
DEFAULT_SETTINGS = (SUPERVISED, TEXT_ONLY, TEXT_ONLY_NOISE)


@dataclasses.dataclass(frozen=True)
class EmbeddingRun:
    """Embeddings of one trained model (one seed) on the train and test splits.

    All are (N, D) L2-normalized float tensors, image row i paired with text row i.
    ``test_text_embeddings`` is needed only by settings with ``test_input="text"``.
    """

    train_image_embeddings: torch.Tensor
    train_text_embeddings: torch.Tensor
    test_image_embeddings: torch.Tensor
    test_text_embeddings: torch.Tensor | None = None
    seed: int = 0


@dataclasses.dataclass
class CaptioningBenchmark:
    """Results of :func:`benchmark_captioning`.

    Attributes:
        records: one row per (model, setting, seed) with every metric.
        examples: for the first seed of each model, one row per example test
            image: its reference caption and labels, then one column per
            (model, setting) with the generated caption.
    """

    records: pd.DataFrame
    examples: pd.DataFrame

    def summary(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Return mean and sample standard deviation (ddof 1) over seeds.

        Index (model, setting) in input order; columns (metric, "mean" | "std")
        and ("seeds", "count"). The std is NaN with a single seed.
        """
        metrics = self._metric_columns(metrics)
        grouped = self.records.groupby(["model", "setting"], sort=False)[metrics]
        summary = grouped.agg(["mean", "std"])
        summary[("seeds", "count")] = grouped.size()
        return summary

    def table(self, metrics: Sequence[str] | None = TABLE_METRICS, digits: int = 3) -> pd.DataFrame:
        """Return "mean ± std" strings, index (model, setting), one column per metric."""
        metrics = self._metric_columns(metrics)
        summary = self.summary(metrics)
        table = pd.DataFrame(index=summary.index)
        for metric in metrics:
            means, stds = summary[(metric, "mean")], summary[(metric, "std")]
            table[metric] = [
                f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"
                for mean, std in zip(means, stds)
            ]
        return table

    def _metric_columns(self, metrics: Sequence[str] | None) -> list[str]:
        present = [column for column in self.records.columns if column not in ("model", "setting", "seed", "train_seconds")]
        if metrics is None:
            return present
        # METEOR is absent without Java; clinical scores without labels.
        return [metric for metric in metrics if metric in present]


def benchmark_captioning(
    runs: Mapping[str, Sequence[EmbeddingRun | Mapping[str, Any]]],
    train_captions: Sequence[str],
    test_captions: Sequence[str],
    *,
    test_labels: Mapping[str, Sequence[Any]] | Any = None,
    settings: Sequence[CaptioningSetting] = DEFAULT_SETTINGS,
    vocabulary: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    config: DecoderConfig | None = None,
    beam_size: int = 3,
    meteor: bool | str = "auto",
    num_examples: int = 5,
    cache: bool = True,
    progress: bool = True,
    workers: int = 1,
) -> CaptioningBenchmark:
    """Caption with every model's embeddings in every setting and seed, and collect the scores.

    Each (model, seed, setting) trains its own captioner with the run's seed,
    through :func:`evaluate_captioning` (cached). One METEOR process serves
    the whole benchmark.

    Args:
        runs: model name -> one :class:`EmbeddingRun` (or a dict with its
            fields) per seed, e.g. ``{"CLIP": [...], "CLIP + ATP + CU": [...]}``.
        train_captions: captions of the train split, row-aligned with every
            run's train embeddings.
        test_captions: captions of the test split.
        test_labels: labels of the test split for clinical correctness (see
            :func:`evaluate_captioning`); None skips it.
        settings: the rows of the table; defaults to supervised, text-only
            and text-only + noise. Add ``TEXT_ONLY_CEILING`` to see the
            text-only decoder on text inputs.
        vocabulary, config, beam_size, meteor, num_examples, cache: as in
            :func:`evaluate_captioning`.
        progress: show a progress bar over evaluations.
        workers: number of processes that train the captioners missing from
            the cache before any decoding, each on one CPU thread. With more
            than 1, that many captioners train at once in spawned processes,
            so the idle cores of a CPU machine do work. Decoding and scoring
            stay in this process, and on the same hardware the scores equal
            those of ``workers=1``.

    Returns:
        A :class:`CaptioningBenchmark`; ``.table()`` is the mean ± std table.

    Raises:
        ValueError: if ``runs`` or ``settings`` is empty, a model has no
            runs, a text-input setting meets a run without test text
            embeddings, or ``workers`` is below 1 or above 1 with ``cache=False``.
        TypeError: if a run is neither an ``EmbeddingRun`` nor a mapping.
    """
    _check_workers(workers, cache)
    if not runs:
        raise ValueError("runs is empty; pass model name -> list of EmbeddingRun (one per seed).")
    if not settings:
        raise ValueError("settings is empty; pass at least one CaptioningSetting, e.g. DEFAULT_SETTINGS.")
    runs = {model: [_as_run(run, model) for run in model_runs] for model, model_runs in runs.items()}
    for model, model_runs in runs.items():
        if not model_runs:
            raise ValueError(f"runs[{model!r}] is empty; give at least one EmbeddingRun per model.")
        for setting in settings:
            if setting.test_input == "text" and any(run.test_text_embeddings is None for run in model_runs):
                raise ValueError(
                    f"setting {setting.name!r} captions test text embeddings, but a run of {model!r} has none; "
                    "set EmbeddingRun.test_text_embeddings."
                )

    jobs = [(model, run, setting) for model, model_runs in runs.items() for run in model_runs for setting in settings]
    train_seconds = {}
    if workers > 1:
        train_seconds = _train_missing_captioners(jobs, train_captions, config, workers, progress)
    records, examples = [], {}
    with shared_meteor(meteor) as meteor_argument:
        for model, run, setting in tqdm(jobs, desc="captioning benchmark", disable=not progress):
            options = {
                "vocabulary": vocabulary,
                "config": config,
                "beam_size": beam_size,
                "meteor": meteor_argument,
                "num_examples": num_examples,
                "cache": cache,
                "progress": False,
            }
            result = _evaluate_setting(run, setting, train_captions, test_captions, test_labels, options)
            seconds = result["train_seconds"]
            if math.isnan(seconds):
                seconds = train_seconds.get(_captioner_key(run, setting, train_captions, config), seconds)
            record = {"model": model, "setting": setting.name, "seed": run.seed, "train_seconds": seconds}
            record.update({name: value for name, value in result["metrics"].items() if name != "captions scored"})
            records.append(record)
            if run is runs[model][0]:
                examples[(model, setting.name)] = result["examples"]

    return CaptioningBenchmark(records=pd.DataFrame.from_records(records), examples=_examples_frame(examples))


def captioning_row(
    run: EmbeddingRun | Mapping[str, Any],
    train_captions: Sequence[str],
    test_captions: Sequence[str],
    *,
    test_labels: Mapping[str, Sequence[Any]] | Any = None,
    settings: Sequence[CaptioningSetting] = DEFAULT_SETTINGS,
    metrics: Sequence[str] | None = TABLE_METRICS,
    workers: int = 1,
    **options: Any,
) -> dict[str, float]:
    """Score one model run in every setting, as flat columns for a benchmark row.

    This is the per-(method, seed) hook for a benchmark runner that keeps one
    row per run: keys are ``"<setting>: <metric>"``, e.g.
    ``"text-only: CIDEr"``. Each setting trains a captioner with the run's
    seed through :func:`evaluate_captioning` (cached).

    Args:
        run: the run's embeddings (an :class:`EmbeddingRun` or a dict of its fields).
        train_captions, test_captions, test_labels, settings: as in
            :func:`benchmark_captioning`.
        metrics: metric names to keep (those missing, e.g. METEOR without
            Java, are left out); None keeps all.
        workers: processes that train the settings' captioners missing from
            the cache at once, as in :func:`benchmark_captioning`.
        options: passed to :func:`evaluate_captioning` (``config``,
            ``beam_size``, ``meteor``, ``vocabulary``, ``cache``, ``progress``).

    Returns:
        ``{"<setting>: <metric>": value}``.
    """
    _check_workers(workers, options.get("cache", True))
    run = _as_run(run, "run")
    if workers > 1:
        jobs = [("run", run, setting) for setting in settings]
        _train_missing_captioners(jobs, train_captions, options.get("config"), workers, progress=False)
    row = {}
    for setting in settings:
        result = _evaluate_setting(run, setting, train_captions, test_captions, test_labels, options)
        for name, value in result["metrics"].items():
            if name != "captions scored" and (metrics is None or name in metrics):
                row[f"{setting.name}: {name}"] = value
    return row


def _check_workers(workers: Any, cache: bool) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if workers > 1 and not cache:
        raise ValueError("workers > 1 needs cache=True: the worker processes hand their captioners over through the cache.")


def _evaluate_setting(
    run: EmbeddingRun,
    setting: CaptioningSetting,
    train_captions: Sequence[str],
    test_captions: Sequence[str],
    test_labels: Mapping[str, Sequence[Any]] | Any,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    if setting.test_input == "text" and run.test_text_embeddings is None:
        raise ValueError(f"setting {setting.name!r} captions test text embeddings, but the run has none.")
    train_embeddings = run.train_image_embeddings if setting.regime == "supervised" else run.train_text_embeddings
    test_embeddings = run.test_image_embeddings if setting.test_input == "image" else run.test_text_embeddings
    return evaluate_captioning(
        train_embeddings,
        train_captions,
        test_embeddings,
        test_captions,
        regime=setting.regime,
        noise_std=setting.noise_std,
        labels=test_labels,
        seed=run.seed,
        **options,
    )


def _training_embeddings(run: EmbeddingRun, setting: CaptioningSetting) -> torch.Tensor:
    return run.train_image_embeddings if setting.regime == "supervised" else run.train_text_embeddings


def _captioner_key(
    run: EmbeddingRun, setting: CaptioningSetting, train_captions: Sequence[str], config: DecoderConfig | None
) -> str:
    config = DecoderConfig() if config is None else config
    return captioner_key(
        _training_embeddings(run, setting), list(train_captions), config=config, noise_std=setting.noise_std, seed=run.seed
    )


def _train_missing_captioners(
    jobs: Sequence[tuple[str, EmbeddingRun, CaptioningSetting]],
    train_captions: Sequence[str],
    config: DecoderConfig | None,
    workers: int,
    progress: bool,
) -> dict[str, float]:
    """Train the jobs' captioners that are not cached, ``workers`` at a time, and return key -> training seconds."""
    config = DecoderConfig() if config is None else config
    captioners = cache_dir("captioning", "captioners")
    tasks = {}
    for _, run, setting in jobs:
        key = _captioner_key(run, setting, train_captions, config)
        # The text-input ceiling shares its captioner with the text-only setting.
        if key not in tasks and not (captioners / f"{key}.pt").exists():
            tasks[key] = (_training_embeddings(run, setting), setting.noise_std, run.seed)
    if not tasks:
        return {}

    # Spawned, not forked: CUDA cannot start in a forked child, and GNU OpenMP thread pools are not fork-safe.
    context = multiprocessing.get_context("spawn")
    seconds = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
        futures = {
            pool.submit(_train_cached_captioner, embeddings, list(train_captions), config, noise_std, seed): key
            for key, (embeddings, noise_std, seed) in tasks.items()
        }
        for future in tqdm(as_completed(futures), total=len(futures), desc="training captioners", disable=not progress):
            seconds[futures[future]] = future.result()
    LOGGER.info("Trained %d captioners in %d worker processes", len(tasks), min(workers, len(tasks)))
    return seconds


def _train_cached_captioner(
    embeddings: torch.Tensor, captions: list[str], config: DecoderConfig, noise_std: float, seed: int
) -> float:
    captioner = train_captioner(embeddings, captions, config=config, noise_std=noise_std, seed=seed, cache=True, progress=False)
    return captioner.train_seconds


def _as_run(run: EmbeddingRun | Mapping[str, Any], model: str) -> EmbeddingRun:
    if isinstance(run, EmbeddingRun):
        return run
    if isinstance(run, Mapping):
        try:
            return EmbeddingRun(**run)
        except TypeError as error:
            fields = [field.name for field in dataclasses.fields(EmbeddingRun)]
            raise TypeError(f"a run of {model!r} has keys {sorted(run)}; expected the EmbeddingRun fields {fields}.") from error
    raise TypeError(f"runs[{model!r}] must hold EmbeddingRun objects or dicts, got {type(run).__name__}")


def _examples_frame(examples: Mapping[tuple[str, str], list[dict[str, Any]]]) -> pd.DataFrame:
    rows: dict[int, dict[str, Any]] = {}
    for (model, setting), items in examples.items():
        for item in items:
            row = rows.setdefault(item["index"], {key: value for key, value in item.items() if key != "prediction"})
            row[f"{model} | {setting}"] = item["prediction"]
    return pd.DataFrame.from_records(list(rows.values()))
