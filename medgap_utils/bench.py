"""Benchmark runner: methods x seeds -> metrics -> a mean ± std table, JSON, Markdown and a figure.

A method is a loss preset trained with :func:`medgap_utils.training.load_or_fit`
(``clip``, ``clip_fixed_tau``, ``clip_atp_cu``, ``atp_only``, ``cu_only``,
``fahim``) or ``posthoc_clip``. ``posthoc_clip`` takes the ``clip`` run's
embeddings, removes each modality's mean (taken on the validation split),
re-normalizes the rows and centers its zero-shot prompts with the same text
mean.
Every method is evaluated on the same split by every registered metric
function: gap geometry, retrieval, clustering, kNN and linear probes,
zero-shot classification with one text prompt per class, and the split of
the within-class scatter. Other modules add columns with
:func:`register_metric` (a function of an :class:`Evaluation` that returns a
dict of floats). Optional metrics run only when a benchmark names them in
``extra_metrics``: ``"captioning"`` trains a caption decoder on each run's
embeddings in the supervised, text-only and text-only + noise regimes and adds
``"<setting>: <metric>"`` columns (BLEU-4, ROUGE-L, CIDEr, METEOR when Java is
present, and clinical correctness when the split has the four label columns).

By default the methods train heads-only on the frozen towers of one
end-to-end CLIP run (the setting of frozen pretrained encoders), which makes
the whole table a few minutes on CPU; ``mode="end_to_end"`` trains every
method and seed from scratch instead. Results are cached under
``cache_dir("bench", key)`` keyed by the benchmark config.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medgap_utils.config import (
    LOSS_PRESETS,
    TRAINING_MODES,
    ExperimentConfig,
    Profile,
    cache_dir,
    config_key,
    experiment_config,
    get_profile,
)
from medgap_utils.io import write_json_atomic, write_text_atomic

logger = logging.getLogger(__name__)

POSTHOC_METHOD = "posthoc_clip"
DEFAULT_METHODS = ("clip", "clip_fixed_tau", "clip_atp_cu", "atp_only", "cu_only", POSTHOC_METHOD)
METHOD_LABELS = {
    "clip": "CLIP, learned τ",
    "clip_fixed_tau": "CLIP, fixed τ",
    "clip_low_tau": "CLIP, learned τ from 0.01",
    "clip_atp_cu": "CLIP + ATP + CU",
    "atp_only": "CLIP + ATP",
    "cu_only": "CLIP + CU",
    "fahim": "CLIP + uniformity + alignment (Fahim)",
    POSTHOC_METHOD: "CLIP + post-hoc centering",
}
# Columns of the Markdown table and the figure; the JSON keeps every metric.
HEADLINE_METRICS = (
    "modality_gap", "true_pair_cosine", "true_pair_angle",
    "image_to_text_R@1", "text_to_image_R@1", "image_to_text_R@10", "text_to_image_R@10",
    "v_measure", "ari", "nmi", "modality_split_rate",
    # Present only when the benchmark adds the captioning columns.
    "supervised: CIDEr", "text-only: CIDEr", "text-only + noise: CIDEr",
)
LOWER_IS_BETTER = {"modality_gap", "true_pair_angle", "modality_split_rate",
                   "scatter_within_fraction", "scatter_gap_fraction"}


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Settings of one benchmark: the methods it trains and how it evaluates them.

    Attributes:
        profile: run-time profile name (sizes, epochs).
        methods: loss preset names and/or ``"posthoc_clip"``.
        seeds: training seeds; each method runs once per seed.
        mode: ``"heads_only"`` (frozen towers of an end-to-end CLIP run) or ``"end_to_end"``.
        split: the corpus split that is evaluated.
        label: the corpus column that the clustering scores are measured against.
        overrides: dotted config changes applied to every run, e.g. ``(("train.epochs", 20),)``.
        backbone_overrides: dotted config changes of the end-to-end backbone run (heads-only mode).
        prompt_template: the zero-shot prompt of each class of ``label``; the
            class value (e.g. ``"pleural effusion"`` or ``"normal chest"``) fills ``{label}``.
        extra_metrics: optional metric functions to run as well, e.g. ``("captioning",)``.
        decoder_overrides: :class:`~medgap_utils.captioning.DecoderConfig` fields of the
            captioners that the ``"captioning"`` metric trains, e.g. ``(("min_steps", 300),)``.
    """

    profile: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    mode: str = "heads_only"
    split: str = "test"
    label: str = "group"
    overrides: tuple[tuple[str, Any], ...] = ()
    backbone_overrides: tuple[tuple[str, Any], ...] = ()
    prompt_template: str = "{label}."
    extra_metrics: tuple[str, ...] = ()
    decoder_overrides: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        allowed = (*LOSS_PRESETS, POSTHOC_METHOD)
        unknown = [method for method in self.methods if method not in allowed]
        if unknown or not self.methods:
            raise ValueError(f"Invalid methods={self.methods!r}: each must be one of {', '.join(allowed)}.")
        if not self.seeds:
            raise ValueError("Invalid seeds=(): give at least one seed.")
        if any(isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 for seed in self.seeds):
            raise ValueError(f"Invalid seeds={self.seeds!r}: each seed must be an integer >= 0, e.g. (0, 1, 2).")
        if self.mode not in TRAINING_MODES:
            raise ValueError(f"Invalid mode={self.mode!r}: expected one of {', '.join(TRAINING_MODES)}.")
        if self.split not in ("validation", "test"):
            raise ValueError(f"Invalid split={self.split!r}: expected 'validation' or 'test'.")
        if "{label}" not in self.prompt_template:
            raise ValueError(f"Invalid prompt_template={self.prompt_template!r}: it must contain '{{label}}', "
                             "which each class value fills, e.g. 'An image showing {label}.'.")
        unknown = [name for name in self.extra_metrics if name not in OPTIONAL_METRICS]
        if unknown:
            raise ValueError(f"Invalid extra_metrics={self.extra_metrics!r}: each must be one of "
                             f"{', '.join(sorted(OPTIONAL_METRICS))}.")
        if self.decoder_overrides:
            from medgap_utils.captioning import DecoderConfig

            try:
                DecoderConfig(**dict(self.decoder_overrides))
            except TypeError as error:
                raise ValueError(f"Invalid decoder_overrides={self.decoder_overrides!r}: {error}. "
                                 "Use DecoderConfig field names, e.g. (('min_steps', 300),).") from None


def benchmark_config(profile: str | Profile | None = None, **fields: Any) -> BenchmarkConfig:
    """Return the benchmark of a profile (its seeds), with ``fields`` changed."""
    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    fields.setdefault("seeds", profile.seeds)
    return BenchmarkConfig(profile=profile.name, **fields)


def method_config(method: str, benchmark: BenchmarkConfig, seed: int) -> ExperimentConfig:
    """Return the experiment config that trains ``method`` with ``seed`` in ``benchmark``."""
    loss = "clip" if method == POSTHOC_METHOD else method
    return experiment_config(loss, profile=benchmark.profile, mode=benchmark.mode, seed=seed,
                             backbone_overrides=dict(benchmark.backbone_overrides), **dict(benchmark.overrides))


@dataclasses.dataclass
class Evaluation:
    """Everything a metric function may use for one method and seed.

    Attributes:
        method, seed: which run.
        image_embeddings, text_embeddings: (N, D) L2-normalized float32, rows aligned.
        labels: the corpus's label columns of the evaluated split (length-N arrays).
        captions: the N reference captions.
        label: the column clustering is scored against.
        result: the trained run (its model, for metrics such as captioning).
        classes: the sorted distinct values of ``labels[label]``.
        prompt_embeddings: (C, D) L2-normalized text embeddings of
            the benchmark's ``prompt_template`` filled with each class, row c for
            ``classes[c]``, in the same space as ``text_embeddings``.
        benchmark: the benchmark config.
        corpus: the ``DatasetDict`` the benchmark runs on.
        split_embeddings: returns ``(image_embeddings, text_embeddings)`` of
            any split of ``corpus`` for this run, transformed as the evaluated
            ones are (post-hoc centering included).
    """

    method: str
    seed: int
    image_embeddings: Any
    text_embeddings: Any
    labels: dict[str, np.ndarray]
    captions: list[str]
    label: str
    result: Any
    classes: tuple[str, ...] = ()
    prompt_embeddings: Any = None
    benchmark: BenchmarkConfig | None = None
    corpus: Any = None
    split_embeddings: Callable[[str], tuple[Any, Any]] | None = None


MetricFunction = Callable[[Evaluation], dict[str, float]]
METRIC_FUNCTIONS: dict[str, MetricFunction] = {}
# Metric functions that run only in benchmarks that name them in ``extra_metrics``.
OPTIONAL_METRICS: dict[str, MetricFunction] = {}


def register_metric(name: str, *, optional: bool = False) -> Callable[[MetricFunction], MetricFunction]:
    """Register a metric function under ``name`` (a decorator); its keys become table columns.

    Registering a new name makes cached benchmark results re-evaluate (not
    retrain). An ``optional`` metric runs only in benchmarks whose
    ``extra_metrics`` name it, for metrics that cost more than the training.
    """
    def decorator(function: MetricFunction) -> MetricFunction:
        (OPTIONAL_METRICS if optional else METRIC_FUNCTIONS)[name] = function
        return function

    return decorator


def active_metrics(config: BenchmarkConfig) -> dict[str, MetricFunction]:
    """Return the metric functions that ``config`` runs: every default one, then its ``extra_metrics``."""
    return {**METRIC_FUNCTIONS, **{name: OPTIONAL_METRICS[name] for name in config.extra_metrics}}


@register_metric("geometry")
def _geometry(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.metrics import gap_summary

    return gap_summary(evaluation.image_embeddings, evaluation.text_embeddings)


@register_metric("retrieval")
def _retrieval(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.metrics import retrieval_metrics

    # Identical captions of different images count as correct matches.
    return retrieval_metrics(evaluation.image_embeddings, evaluation.text_embeddings,
                             text_groups=evaluation.captions)


@register_metric("grouping")
def _grouping(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.metrics import clustering_scores

    return clustering_scores(evaluation.image_embeddings, evaluation.text_embeddings,
                             evaluation.labels[evaluation.label], seed=evaluation.seed)


@register_metric("probes")
def _probes(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.metrics import knn_accuracy, linear_probe_accuracy

    # Both probes classify the stacked image and text rows, with a pair's two rows in one fold.
    arguments = (evaluation.image_embeddings, evaluation.text_embeddings, evaluation.labels[evaluation.label])
    return {"knn_accuracy": knn_accuracy(*arguments, seed=evaluation.seed),
            "linear_probe_accuracy": linear_probe_accuracy(*arguments, seed=evaluation.seed)}


@register_metric("zero_shot")
def _zero_shot(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.metrics import zero_shot_classification

    class_index = {value: index for index, value in enumerate(evaluation.classes)}
    targets = np.array([class_index[value] for value in evaluation.labels[evaluation.label]])
    scores = zero_shot_classification(evaluation.image_embeddings, evaluation.prompt_embeddings, targets)
    return {f"zero_shot_{name}": value for name, value in scores.items()}


@register_metric("scatter")
def _scatter(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.metrics import within_class_scatter

    scores = within_class_scatter(evaluation.image_embeddings, evaluation.text_embeddings,
                                  evaluation.labels[evaluation.label])
    return {f"scatter_{name}": value for name, value in scores.items()}


# The four label columns that clinical correctness compares generated captions with.
CLINICAL_FIELDS = ("modality", "anatomy", "finding", "side")


@register_metric("captioning", optional=True)
def _captioning(evaluation: Evaluation) -> dict[str, float]:
    from medgap_utils.captioning import DecoderConfig, EmbeddingRun, captioning_row
    from medgap_utils.captioning.evaluate import shared_meteor

    corpus, benchmark = evaluation.corpus, evaluation.benchmark
    train_image, train_text = evaluation.split_embeddings("train")
    run = EmbeddingRun(train_image, train_text, evaluation.image_embeddings, evaluation.text_embeddings,
                       seed=evaluation.seed)
    test_split = corpus[benchmark.split]
    # Clinical correctness needs all four label columns, so a corpus without them gets the text metrics only.
    labels = test_split if all(field in test_split.column_names for field in CLINICAL_FIELDS) else None
    # A run's three captioners train in up to three processes, one per core, each on one thread.
    workers = max(1, min(3, os.cpu_count() or 1))
    with shared_meteor("auto") as meteor:
        return captioning_row(run, list(corpus["train"]["caption"]), evaluation.captions, test_labels=labels,
                              config=DecoderConfig(**dict(benchmark.decoder_overrides)), meteor=meteor,
                              workers=workers, progress=False)


def _split_embeddings(result: Any, split: str, corpus: Any) -> tuple[Any, Any]:
    from medgap_utils.models import embed, project_features
    from medgap_utils.training import load_or_compute_features

    config = result.config
    if config.train.mode == "heads_only":
        features = load_or_compute_features(config, result.model, corpus, progress=False)
        return project_features(result.model, *features[split])
    return embed(result.model, corpus[split], num_workers=config.train.num_workers, progress=False)


def _posthoc(result: Any, split: str, corpus: Any, prompts: Any = None) -> tuple[Any, Any, Any]:
    import torch.nn.functional as F

    from medgap_utils.metrics import center_modalities

    image_embeddings, text_embeddings = _split_embeddings(result, split, corpus)
    image_reference, text_reference = _split_embeddings(result, "validation", corpus)
    image_mean, text_mean = image_reference.mean(0), text_reference.mean(0)
    image_embeddings, text_embeddings = center_modalities(image_embeddings, text_embeddings,
                                                          image_mean=image_mean, text_mean=text_mean)
    if prompts is not None:
        prompts = F.normalize(prompts - text_mean, dim=1)
    return image_embeddings, text_embeddings, prompts


def _method_embeddings(method: str, result: Any, split: str, corpus: Any) -> tuple[Any, Any]:
    """Return the embeddings of ``split`` that ``method`` evaluates: the run's own, or centered for post-hoc."""
    if method == POSTHOC_METHOD:
        return _posthoc(result, split, corpus)[:2]
    return _split_embeddings(result, split, corpus)


def _default_corpus(config: BenchmarkConfig) -> Any:
    from medgap_utils.data import load_phantom_corpus

    data = method_config(config.methods[0], config, config.seeds[0]).data
    return load_phantom_corpus(seed=data.seed, sizes=data.sizes, image_size=data.image_size)


def method_embeddings(method: str, benchmark: BenchmarkConfig, seed: int, *, corpus: Any = None) -> tuple[Any, Any]:
    """Return the embeddings that ``benchmark`` evaluates for ``method`` and ``seed``.

    The run is loaded from the cache, or trained when missing, exactly as
    :func:`run_benchmark` does; ``posthoc_clip`` returns the centered CLIP
    embeddings.

    Args:
        method: a loss preset name or ``"posthoc_clip"``.
        benchmark: the benchmark config (profile, mode, split, overrides).
        seed: the training seed.
        corpus: the ``DatasetDict`` (default: the phantom corpus of the profile).

    Returns:
        ``(image_embeddings, text_embeddings)`` of ``benchmark.split``: float32
        (N, D) tensors with unit rows, row i of both from pair i.

    Raises:
        ValueError: for an unknown method.
    """
    from medgap_utils.training import load_or_fit

    if method not in (*LOSS_PRESETS, POSTHOC_METHOD):
        raise ValueError(f"Invalid method={method!r}: expected one of {', '.join((*LOSS_PRESETS, POSTHOC_METHOD))}.")
    corpus = _default_corpus(benchmark) if corpus is None else corpus
    result = load_or_fit(method_config(method, benchmark, seed), corpus=corpus, progress=False)
    return _method_embeddings(method, result, benchmark.split, corpus)


@dataclasses.dataclass
class BenchmarkResult:
    """Per-run metrics and their summary.

    Attributes:
        config: the benchmark config.
        rows: one dict per (method, seed): ``method``, ``seed`` and every metric.
    """

    config: BenchmarkConfig
    rows: list[dict[str, Any]]

    def metrics(self) -> list[str]:
        """Return the metric names present in every row, headline metrics first."""
        common = set.intersection(*(set(row) for row in self.rows)) - {"method", "seed"}
        headline = [name for name in HEADLINE_METRICS if name in common]
        return headline + sorted(common - set(headline))

    def summary(self) -> list[dict[str, Any]]:
        """Return one dict per method: ``method``, ``label``, ``runs`` and ``<metric>_mean``/``<metric>_std``.

        The std is the sample standard deviation over seeds (0 for one seed).
        """
        table = []
        for method in self.config.methods:
            rows = [row for row in self.rows if row["method"] == method]
            entry: dict[str, Any] = {"method": method, "label": METHOD_LABELS.get(method, method), "runs": len(rows)}
            for metric in self.metrics():
                values = np.array([row[metric] for row in rows], dtype=float)
                entry[f"{metric}_mean"] = float(values.mean())
                entry[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            table.append(entry)
        return table

    def to_markdown(self, metrics: tuple[str, ...] | None = None, digits: int = 3) -> str:
        """Return the summary as a Markdown table of ``mean ± std`` cells."""
        metrics = metrics or tuple(name for name in HEADLINE_METRICS if name in self.metrics())
        header = "| method | " + " | ".join(f"{name} {'↓' if name in LOWER_IS_BETTER else '↑'}"
                                           for name in metrics) + " |"
        lines = [header, "|" + "---|" * (len(metrics) + 1)]
        for entry in self.summary():
            cells = [f"{entry[f'{name}_mean']:.{digits}f} ± {entry[f'{name}_std']:.{digits}f}" for name in metrics]
            lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")
        seeds = ", ".join(map(str, self.config.seeds))
        lines.append("")
        lines.append(f"Mean ± std over seeds {seeds}; {self.config.mode.replace('_', '-')} training, "
                     f"profile {self.config.profile}, {self.config.split} split, clustering against "
                     f"'{self.config.label}'.")
        return "\n".join(lines) + "\n"

    def figure(self, metrics: tuple[str, ...] | None = None):
        """Return a plotly bar chart of mean ± std per method, with a menu to switch the metric."""
        import plotly.graph_objects as go

        metrics = metrics or tuple(name for name in HEADLINE_METRICS if name in self.metrics())
        summary = self.summary()
        labels = [entry["label"] for entry in summary]
        figure = go.Figure()
        for index, metric in enumerate(metrics):
            figure.add_trace(go.Bar(
                x=labels, y=[entry[f"{metric}_mean"] for entry in summary],
                error_y={"type": "data", "array": [entry[f"{metric}_std"] for entry in summary]},
                name=metric, visible=index == 0,
            ))
        buttons = []
        for index, metric in enumerate(metrics):
            arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            buttons.append({"label": metric, "method": "update",
                            "args": [{"visible": [i == index for i in range(len(metrics))]},
                                     {"yaxis": {"title": {"text": f"{metric} ({arrow})"}}}]})
        first_arrow = "lower is better" if metrics[0] in LOWER_IS_BETTER else "higher is better"
        figure.update_layout(
            updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.15, "yanchor": "top"}],
            yaxis_title=f"{metrics[0]} ({first_arrow})",
            title=f"Benchmark: mean ± std over {len(self.config.seeds)} seeds ({self.config.mode.replace('_', '-')})",
            showlegend=False, margin={"t": 80},
        )
        return figure

    def save(self, directory: str | Path) -> dict[str, Path]:
        """Write ``results.json``, ``results.md`` and ``figure.html`` to ``directory`` atomically."""
        directory = Path(directory)
        paths = {"json": directory / "results.json", "markdown": directory / "results.md",
                 "figure": directory / "figure.html"}
        write_json_atomic(paths["json"], {"config": dataclasses.asdict(self.config), "rows": self.rows,
                                          "summary": self.summary(),
                                          "metric_functions": sorted(active_metrics(self.config))})
        write_text_atomic(paths["markdown"], self.to_markdown())
        write_text_atomic(paths["figure"], self.figure().to_html(include_plotlyjs=True, full_html=True))
        return paths


def benchmark_dir(config: BenchmarkConfig) -> Path:
    """Return the cache directory of a benchmark config."""
    return cache_dir("bench", create=False) / config_key(config)


def _load_cached(config: BenchmarkConfig) -> BenchmarkResult | None:
    path = benchmark_dir(config) / "results.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    if set(stored.get("metric_functions", ())) != set(active_metrics(config)):
        logger.info("re-evaluating the cached benchmark: the registered metric functions changed")
        return None
    return BenchmarkResult(config=config, rows=stored["rows"])


def run_benchmark(config: BenchmarkConfig | None = None, *, corpus: Any = None, progress: bool = True,
                  force: bool = False) -> BenchmarkResult:
    """Train (or load) every method and seed of ``config``, evaluate them and cache the table.

    Args:
        config: the benchmark (default: :func:`benchmark_config` of the active profile).
        corpus: the ``DatasetDict`` to use (default: the phantom corpus of the profile).
        progress: show progress bars.
        force: re-evaluate even when a cached table exists (trained runs are still reused).

    Returns:
        The :class:`BenchmarkResult`, also saved under :func:`benchmark_dir`.
    """
    from tqdm.auto import tqdm

    from medgap_utils.models import embed_texts
    from medgap_utils.training import load_or_fit

    config = config or benchmark_config()
    if not force:
        cached = _load_cached(config)
        if cached is not None:
            return cached

    if corpus is None:
        corpus = _default_corpus(config)
    split = corpus[config.split]
    if config.label not in split.column_names:
        raise ValueError(f"Invalid label={config.label!r}: the {config.split} split has columns {split.column_names}.")
    label_columns = [name for name in split.column_names if name not in ("image", "caption", "image_id")]
    labels = {name: np.asarray(split[name]) for name in label_columns}
    captions = list(split["caption"])
    classes = tuple(sorted(map(str, set(labels[config.label]))))
    labels[config.label] = labels[config.label].astype(str)
    prompts = [config.prompt_template.replace("{label}", value) for value in classes]

    rows = []
    runs = [(method, seed) for method in config.methods for seed in config.seeds]
    for method, seed in tqdm(runs, desc="benchmark", disable=not progress):
        result = load_or_fit(method_config(method, config, seed), corpus=corpus, progress=False)
        prompt_embeddings = embed_texts(result.model, prompts)
        if method == POSTHOC_METHOD:
            image_embeddings, text_embeddings, prompt_embeddings = _posthoc(result, config.split, corpus,
                                                                            prompt_embeddings)
        else:
            image_embeddings, text_embeddings = _split_embeddings(result, config.split, corpus)
        split_embeddings = functools.partial(_method_embeddings, method, result, corpus=corpus)
        evaluation = Evaluation(method=method, seed=seed, image_embeddings=image_embeddings,
                                text_embeddings=text_embeddings, labels=labels, captions=captions,
                                label=config.label, result=result, classes=classes,
                                prompt_embeddings=prompt_embeddings, benchmark=config, corpus=corpus,
                                split_embeddings=split_embeddings)
        row: dict[str, Any] = {"method": method, "seed": seed}
        for function in active_metrics(config).values():
            row.update({key: float(value) for key, value in function(evaluation).items()})
        rows.append(row)
        logger.info("%s seed %d: modality_gap %.3f", method, seed, row.get("modality_gap", float("nan")))

    benchmark = BenchmarkResult(config=config, rows=rows)
    benchmark.save(benchmark_dir(config))
    return benchmark


def add_bench_parser(commands: Any) -> None:
    """Register the ``bench`` subcommand on ``commands`` (an argparse subparsers object)."""
    parser = commands.add_parser(
        "bench", help="train the benchmark methods over seeds and write the results table",
        description="Train (or load) each method for each seed, evaluate gap geometry, retrieval and "
                    "clustering, and write results.json, results.md and figure.html.",
    )
    parser.add_argument("--profile", choices=["ci", "cpu", "gpu", "paper"], default=None,
                        help="run-time profile for sizes and seeds (default: $MEDGAP_PROFILE, else the hardware's)")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        choices=[*LOSS_PRESETS, POSTHOC_METHOD], metavar="METHOD",
                        help=f"methods to compare (default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="training seeds (default: the profile's)")
    parser.add_argument("--mode", choices=list(TRAINING_MODES), default="heads_only",
                        help="heads_only: heads on frozen towers of one end-to-end CLIP run (default); "
                             "end_to_end: every run trains its towers")
    parser.add_argument("--split", choices=["validation", "test"], default="test", help="evaluated split")
    parser.add_argument("--label", default="group", help="corpus column that clustering is scored against")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every run")
    parser.add_argument("--prompt-template", default=BenchmarkConfig.prompt_template,
                        help="zero-shot prompt of each class; the class value replaces {label} "
                             "(default: %(default)r)")
    parser.add_argument("--captioning", action="store_true",
                        help="also train caption decoders on every run's embeddings and add the captioning columns "
                             "(supervised, text-only, text-only + noise; one captioner per method, seed and regime)")
    parser.add_argument("--output", type=Path, default=None,
                        help="also write the results to this directory (default: only the cache)")
    parser.add_argument("--force", action="store_true", help="re-evaluate even if a cached table exists")
    parser.set_defaults(handler=run_bench_command)


def run_bench_command(args: Any) -> int:
    """Run the benchmark of ``args`` and print its Markdown table."""
    fields: dict[str, Any] = {"methods": tuple(args.methods), "mode": args.mode, "split": args.split,
                              "label": args.label, "prompt_template": args.prompt_template}
    if args.seeds:
        fields["seeds"] = tuple(args.seeds)
    if args.epochs is not None:
        fields["overrides"] = (("train.epochs", args.epochs),)
    if args.captioning:
        fields["extra_metrics"] = ("captioning",)
    try:
        config = benchmark_config(args.profile, **fields)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.output is not None and args.output.exists() and not args.output.is_dir():
        raise SystemExit(f"error: --output {str(args.output)!r} is a file; give a folder for the results.")
    result = run_benchmark(config, force=args.force)
    directory = benchmark_dir(config)
    if args.output is not None:
        result.save(args.output)
        directory = args.output
    print(result.to_markdown(), end="")
    print(f"results: {directory}")
    return 0
