"""The corpus that a data config names: the embedded phantoms or a ROCO version from the hub.

:func:`load_corpus` is the one switch between data sources: training and the
chapters call it with ``config.data``, so changing ``data.corpus`` (for
example ``experiment_config(..., **{"data.corpus": "roco_mini"})``) changes
the data of a run and the cache keys of everything computed from it.
"""

from __future__ import annotations

import itertools
import logging
import os

import datasets

from ..config import DataConfig, cache_dir, config_key
from .corpus import load_phantom_corpus
from .hub import load_roco

logger = logging.getLogger(__name__)

#: ``data.corpus`` names of the hub corpora and the ``load_roco`` version each loads.
HUB_CORPORA = {"roco_mini": "mini", "roco_v2": "v2", "roco_v1": "v1"}
SPLITS = ("train", "validation", "test")


def load_corpus(data: DataConfig, *, data_files=None, hub_cache_dir: str | os.PathLike | None = None,
                progress: bool = True) -> datasets.DatasetDict:
    """Return the ``train``/``validation``/``test`` corpus of a data config.

    - ``phantom``: :func:`~medgap_utils.data.load_phantom_corpus` with the
      config's seed, sizes and image size.
    - ``roco_mini``, ``roco_v2``, ``roco_v1``: the first ``data.sizes[i]``
      pairs of each split, streamed from the hub with
      :func:`~medgap_utils.data.load_roco` (only those rows are downloaded),
      written to an Arrow dataset and cached under ``cache_dir("corpora")``.
      A split the hub lacks (the ROCOv2 sample has no validation split) is
      taken from the training rows that follow the first ``data.sizes[0]``.
      When the hub's training split is smaller than both requests together,
      training and validation share its rows in the ratio of their sizes.
      ``data.image_size`` and ``data.seed`` do not apply, because the towers'
      own transforms resize the images. A split with fewer pairs than
      requested is used whole, with a warning.

    Args:
        data: the data config (``config.data`` of an experiment).
        data_files: for the hub corpora, local parquet files per split in ROCO's
            schema (see :func:`~medgap_utils.data.write_roco_parquet`) instead of
            the hub; the result is then not cached.
        hub_cache_dir: the ``datasets`` cache for the downloaded files.
        progress: show progress bars while the pairs are generated or streamed.

    Raises:
        TypeError: ``data`` is not a :class:`~medgap_utils.config.DataConfig`.
        HubUnavailableError: a hub corpus without network (within seconds).
    """
    if not isinstance(data, DataConfig):
        raise TypeError(f"data must be a DataConfig (config.data of an experiment), got {type(data).__name__}")
    if data.corpus == "phantom":
        return load_phantom_corpus(seed=data.seed, sizes=data.sizes, image_size=data.image_size, progress=progress)

    path = cache_dir("corpora", create=False) / f"{data.corpus}-{config_key(data)}"
    if data_files is None and (path / "dataset_dict.json").is_file():
        logger.info("Loading %s from %s", data.corpus, path)
        try:
            return datasets.load_from_disk(str(path))
        except (OSError, ValueError) as error:
            raise ValueError(f"The cached {data.corpus} corpus at {path} cannot be read ({error}). Delete that "
                             "folder to stream the pairs from the hub again.") from error

    streams = load_roco(HUB_CORPORA[data.corpus], streaming=True, data_files=data_files, cache_dir=hub_cache_dir)
    requested = dict(zip(SPLITS, data.sizes))
    carve_validation = "validation" not in streams
    # datasets caches a generated split by its fingerprint, so local files are part of it.
    key = config_key({"data": data, "data_files": data_files})
    splits = {}
    for split in ("train", "test") if carve_validation else SPLITS:
        count = requested[split] + (requested["validation"] if split == "train" and carve_validation else 0)
        splits[split] = _materialize(streams[split], count, f"{data.corpus}-{key}-{split}", progress)
    if carve_validation:
        rows = splits["train"]
        first = requested["train"]
        if len(rows) < requested["train"] + requested["validation"]:
            first = round(len(rows) * requested["train"] / (requested["train"] + requested["validation"]))
        splits["train"], splits["validation"] = rows.select(range(first)), rows.select(range(first, len(rows)))

    corpus = datasets.DatasetDict({split: splits[split] for split in SPLITS})
    for split in SPLITS:
        if len(corpus[split]) < requested[split]:
            logger.warning("%s: the %s split has %d pairs, fewer than the %d requested by data.sizes.",
                           data.corpus, split, len(corpus[split]), requested[split])
    if data_files is None:
        corpus.save_to_disk(str(path))
    return corpus


def _materialize(stream: datasets.IterableDataset, count: int, fingerprint: str, progress: bool) -> datasets.Dataset:
    """Write the first ``count`` rows of a stream to an Arrow dataset on disk, not in memory."""
    from tqdm.auto import tqdm

    def rows():
        yield from tqdm(itertools.islice(stream, count), total=count, desc=f"stream {fingerprint}",
                        disable=not progress)

    return datasets.Dataset.from_generator(rows, features=stream.features, fingerprint=fingerprint)
