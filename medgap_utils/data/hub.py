"""Hugging Face hub loaders (ROCO, ROCOv2, IU X-ray, any image-caption set), mapped to the common schema.

Each loader returns the common schema (``image``, ``caption``, ``image_id``)
plus the columns it is asked to keep. Rows with an unreadable image or an
empty caption are dropped, and rows repeating an ``image_id`` too; the counts
are logged. Pass ``streaming=True`` for the large sets: rows are then mapped
and filtered lazily as they are read.

Every loader accepts ``data_files`` (local parquet files in the hub dataset's
schema) instead of the hub id, which is how the tests run them offline.
Without network they fail within seconds, naming the dataset and pointing
to the embedded corpus: ``HF_HUB_OFFLINE=1`` is honoured, and otherwise a
TCP connection to the hub endpoint (``HF_ENDPOINT``) is tried first with a
3-second timeout.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import datasets
from PIL import Image

from .images import clean_caption, decode_image, drop_invalid_rows
from .schema import CORPUS_FEATURES

logger = logging.getLogger(__name__)

ROCO_HUB_IDS = {
    "v2": "eltorio/ROCOv2-radiology",
    "mini": "unsloth/Radiology_mini",
    "v1": "eltorio/ROCO-radiology",
}
IU_XRAY_HUB_ID = "ykumards/open-i"
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0
_TRUE = {"1", "true", "yes", "on"}

#: ROCOv2's columns as its dataset card declares them. ROCO v1 has the same
#: columns without ``cui`` (UMLS concept ids).
ROCO_FEATURES = datasets.Features({
    "image": datasets.Image(),
    "image_id": datasets.Value("string"),
    "caption": datasets.Value("string"),
    "cui": datasets.List(datasets.Value("string")),
})


class HubUnavailableError(ConnectionError):
    """The hub cannot be reached (offline mode or no network) and the data is not cached."""


def hub_offline() -> bool:
    """Return True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Return True when a TCP connection to the hub endpoint (``HF_ENDPOINT``) opens within ``timeout`` seconds."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable(name: str, reason: str) -> HubUnavailableError:
    return HubUnavailableError(
        f"Cannot load {name!r} from the Hugging Face hub: {reason}. Without network, use the embedded "
        "phantom corpus (medgap_utils.data.load_phantom_corpus()), or pass data_files= with local parquet "
        "files in this dataset's schema."
    )


@contextlib.contextmanager
def _offline_libraries() -> Iterator[None]:
    """Make ``datasets`` and ``huggingface_hub`` honour ``HF_HUB_OFFLINE`` for the duration of a load.

    Both libraries read the variable once, when they are imported. Without
    this, setting it later (in a notebook cell) still lets them try the network
    and retry for tens of seconds before failing.
    """
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def _load_raw(name_or_path, split, streaming, data_files, cache_dir):
    """Load from local files, a local folder, or the hub (after the offline checks)."""
    if data_files is not None:
        return datasets.load_dataset("parquet", data_files=data_files, split=split, streaming=streaming,
                                     cache_dir=cache_dir)
    if Path(str(name_or_path)).exists():
        return datasets.load_dataset(str(name_or_path), split=split, streaming=streaming, cache_dir=cache_dir)

    offline = hub_offline()
    if not offline and not hub_reachable():
        raise _unavailable(name_or_path, f"no connection to {os.environ.get('HF_ENDPOINT', DEFAULT_ENDPOINT)} "
                                         f"within {PROBE_TIMEOUT_S:g} s")
    try:
        with _offline_libraries() if offline else contextlib.nullcontext():
            return datasets.load_dataset(name_or_path, split=split, streaming=streaming, cache_dir=cache_dir)
    except (ConnectionError, OSError, ValueError) as error:
        if offline:
            raise _unavailable(name_or_path, f"HF_HUB_OFFLINE is set and the data is not cached ({error})") from error
        raise


def _image_cell(value):
    """Normalize an image value (Image dict, raw bytes, path, PIL image) to ``{"bytes", "path"}``."""
    if value is None:
        return {"bytes": None, "path": None}
    if isinstance(value, dict):
        return {"bytes": value.get("bytes"), "path": value.get("path")}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": bytes(value), "path": None}
    if isinstance(value, str):
        return {"bytes": None, "path": value}
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}
    raise TypeError(f"Unsupported image value of type {type(value).__name__}.")


def _check_columns(column_names, required: dict[str, str | None], name: str) -> None:
    for argument, column in required.items():
        if column is not None and column not in column_names:
            raise ValueError(
                f"{name}: column {column!r} (from {argument}) not found; the dataset has {list(column_names)}. "
                f"Pass {argument}= with one of those names."
            )


class _StreamFilter:
    """Keep streamed rows whose caption is non-empty and image decodes; log the dropped ones."""

    def __init__(self, name: str):
        self.name, self.dropped = name, 0

    def __call__(self, row) -> bool:
        reason = None
        if not row["caption"]:
            reason = "empty caption"
        else:
            try:
                decode_image(row["image"])
            except ValueError:
                reason = "unreadable image"
        if reason is None:
            return True
        self.dropped += 1
        if self.dropped <= 5 or self.dropped % 100 == 0:
            logger.warning("%s: dropped streamed row %s (%s); %d dropped so far.",
                           self.name, row["image_id"], reason, self.dropped)
        return False


def _decode_row(row):
    # NOTE: in datasets 5.2, cast_column to a decoding Image() after filter() on an
    # IterableDataset still yields raw dicts, so streamed images are decoded here.
    return {"image": decode_image(row["image"])}


def _decoded(features):
    if features is None:
        return None
    features = datasets.Features(features)
    features["image"] = datasets.Image()
    return features


def _to_common_split(raw, split_name, name, image_column, caption_column, id_column, keep_columns, max_rows):
    """Map one split (Dataset or IterableDataset) to the common schema."""
    column_names = raw.column_names if raw.column_names is not None else list(raw.features)
    _check_columns(column_names, {"image_column": image_column, "caption_column": caption_column,
                                  "id_column": id_column}, name)
    _check_columns(column_names, {"keep_columns": column for column in keep_columns}, name)

    streaming = isinstance(raw, datasets.IterableDataset)
    if max_rows is not None:
        raw = raw.take(max_rows) if streaming else raw.select(range(min(max_rows, len(raw))))
    if not streaming and isinstance(raw.features.get(image_column), datasets.Image):
        raw = raw.cast_column(image_column, datasets.Image(decode=False))
    elif streaming and isinstance((raw.features or {}).get(image_column), datasets.Image):
        raw = raw.cast_column(image_column, datasets.Image(decode=False))

    prefix = f"{name.split('/')[-1]}-{split_name}"

    def convert(batch, indices):
        converted = {
            "image": [_image_cell(value) for value in batch[image_column]],
            "caption": [clean_caption(value) for value in batch[caption_column]],
            "image_id": ([str(value) for value in batch[id_column]] if id_column is not None
                         else [f"{prefix}-{index:07d}" for index in indices]),
        }
        for column in keep_columns:
            converted[column] = batch[column]
        return converted

    features = None
    if raw.features is not None:
        features = datasets.Features({**CORPUS_FEATURES, **{column: raw.features[column] for column in keep_columns}})
    drop = [column for column in column_names if column not in keep_columns]
    if streaming:
        # Filter on the raw bytes first: decoding happens when the Image feature is read,
        # so a corrupt image would raise before a later filter could drop it.
        if features is not None:
            features["image"] = datasets.Image(decode=False)
        mapped = raw.map(convert, batched=True, with_indices=True, remove_columns=drop, features=features)
        return mapped.filter(_StreamFilter(name)).map(_decode_row, features=_decoded(features))
    mapped = raw.map(convert, batched=True, with_indices=True, remove_columns=drop, features=features,
                     desc=f"map {name} to the common schema")
    return drop_invalid_rows(mapped)


def _to_common(raw, name, image_column, caption_column, id_column, keep_columns, max_rows):
    if isinstance(raw, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        parts = {split: _to_common_split(part, split, name, image_column, caption_column, id_column,
                                         keep_columns, max_rows)
                 for split, part in raw.items()}
        return type(raw)(parts)
    split_name = str(raw.split) if getattr(raw, "split", None) is not None else "data"
    return _to_common_split(raw, split_name, name, image_column, caption_column, id_column, keep_columns, max_rows)


def load_image_caption_dataset(
    name_or_path: str,
    *,
    image_column: str = "image",
    caption_column: str = "caption",
    id_column: str | None = None,
    keep_columns: Sequence[str] = (),
    split: str | None = None,
    streaming: bool = False,
    data_files=None,
    max_rows: int | None = None,
    cache_dir: str | None = None,
):
    """Load any image-caption dataset and map it to the common schema.

    Args:
        name_or_path: a hub id (``owner/name``) or a local folder ``datasets``
            can read (parquet, imagefolder ...). Used to name the data in
            messages and generated ids when ``data_files`` is given.
        image_column: column with the image (an ``Image`` feature, raw bytes or a path).
        caption_column: column with the caption text.
        id_column: column with a unique id; None numbers the rows
            (``<name>-<split>-0000000``).
        keep_columns: further columns to keep unchanged (e.g. labels).
        split: one split, or None for all (a ``DatasetDict``).
        streaming: return an ``IterableDataset`` read lazily.
        data_files: local parquet file(s), or a dict split -> files, in the
            dataset's schema; then nothing is downloaded.
        max_rows: keep at most this many rows per split (before cleaning).
        cache_dir: the ``datasets`` cache folder (default: its own).

    Returns:
        ``Dataset``, ``DatasetDict``, ``IterableDataset`` or ``IterableDatasetDict``
        with :data:`CORPUS_FEATURES` plus ``keep_columns``.

    Raises:
        ValueError: if a named column is missing (the message lists the columns).
        HubUnavailableError: within seconds, when the hub cannot be reached.
    """
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}.")
    raw = _load_raw(name_or_path, split, streaming, data_files, cache_dir)
    return _to_common(raw, str(name_or_path), image_column, caption_column, id_column, tuple(keep_columns), max_rows)


def load_roco(
    version: str = "v2",
    *,
    split: str | None = None,
    streaming: bool = False,
    data_files=None,
    max_rows: int | None = None,
    keep_cui: bool = True,
    cache_dir: str | None = None,
):
    """Load ROCO radiology figure captions in the common schema.

    Args:
        version: ``"v2"`` (ROCOv2, ``eltorio/ROCOv2-radiology``: about 60k/10k/10k
            pairs, ~18.6 GB, stream it), ``"mini"`` (``unsloth/Radiology_mini``,
            a 0.33 % sample of ROCOv2: 1,978 train and 327 test pairs) or ``"v1"``
            (``eltorio/ROCO-radiology``). Sizes are those on the dataset cards.
        keep_cui: keep ROCOv2's ``cui`` column (UMLS concept ids) when present.
        split, streaming, data_files, max_rows, cache_dir: as in
            :func:`load_image_caption_dataset`.

    Raises:
        ValueError: for an unknown version.
        HubUnavailableError: within seconds, when the hub cannot be reached.
    """
    if version not in ROCO_HUB_IDS:
        raise ValueError(f"version must be one of {sorted(ROCO_HUB_IDS)}, got {version!r}.")
    hub_id = ROCO_HUB_IDS[version]
    raw = _load_raw(hub_id, split, streaming, data_files, cache_dir)
    first = next(iter(raw.values())) if isinstance(raw, (datasets.DatasetDict, datasets.IterableDatasetDict)) else raw
    columns = first.column_names if first.column_names is not None else list(first.features or {})
    keep = ("cui",) if keep_cui and "cui" in columns else ()
    return _to_common(raw, hub_id, "image", "caption", "image_id", keep, max_rows)


def write_roco_parquet(rows: Mapping[str, Sequence], path: str | os.PathLike, *, with_cui: bool = True) -> Path:
    """Write image-caption rows as a parquet file in ROCO's hub schema and return its path.

    The file loads with ``load_roco(..., data_files=path)`` exactly as the hub
    data would, so examples and tests run the loader offline.

    Args:
        rows: column lists ``image``, ``image_id`` and ``caption``, plus
            ``cui`` (lists of strings) when ``with_cui`` is true. Images may be
            PIL images, encoded bytes or ``{"bytes", "path"}`` dicts. Bytes that
            are no image are written as they are, so the loader's cleaning can be tested.
        path: the ``.parquet`` file to write; its folder is created.
        with_cui: write ROCOv2's schema (:data:`ROCO_FEATURES`), or ROCO v1's, without ``cui``.

    Raises:
        ValueError: a column is missing or extra, or the columns differ in length.
    """
    features = ROCO_FEATURES if with_cui else datasets.Features(
        {name: feature for name, feature in ROCO_FEATURES.items() if name != "cui"})
    if set(rows) != set(features):
        raise ValueError(f"rows must have exactly the columns {sorted(features)}, got {sorted(rows)}. "
                         "Pass with_cui=False for ROCO v1's schema, which has no 'cui' column.")
    lengths = {name: len(values) for name, values in rows.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"rows must have columns of equal length, got {lengths}.")
    columns = {name: list(values) for name, values in rows.items()}
    columns["image"] = [_image_cell(value) for value in columns["image"]]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
    return path


def load_iu_xray(
    *,
    split: str | None = "train",
    views: Sequence[str] = ("frontal",),
    caption_fields: Sequence[str] = ("findings", "impression"),
    streaming: bool = False,
    data_files=None,
    max_rows: int | None = None,
    cache_dir: str | None = None,
):
    """Load IU X-ray (Open-I chest radiograph reports, ``ykumards/open-i``) in the common schema.

    Each report has a frontal and a lateral image (``img_frontal``,
    ``img_lateral``: raw JPEG bytes); each requested view becomes one row
    with ``image_id`` ``<uid>_<view>``. The caption joins the non-empty
    report sections named in ``caption_fields``. The ``MeSH`` and
    ``Problems`` columns are kept.

    Raises:
        ValueError: for an unknown view or caption field.
        HubUnavailableError: within seconds, when the hub cannot be reached.
    """
    for view in views:
        if view not in ("frontal", "lateral"):
            raise ValueError(f"views may contain 'frontal' and 'lateral', got {view!r}.")
    if not views:
        raise ValueError("views must name at least one of 'frontal', 'lateral'.")
    raw = _load_raw(IU_XRAY_HUB_ID, split, streaming, data_files, cache_dir)
    parts = raw if isinstance(raw, (datasets.DatasetDict, datasets.IterableDatasetDict)) else {None: raw}

    converted = {}
    for split_name, part in parts.items():
        column_names = part.column_names if part.column_names is not None else list(part.features)
        _check_columns(column_names, {"caption_fields": field for field in caption_fields}, IU_XRAY_HUB_ID)
        _check_columns(column_names, {"views": f"img_{view}" for view in views}, IU_XRAY_HUB_ID)
        streaming_part = isinstance(part, datasets.IterableDataset)
        if max_rows is not None:
            part = part.take(max_rows) if streaming_part else part.select(range(min(max_rows, len(part))))

        def expand(batch):
            rows = {"image": [], "caption": [], "image_id": [], "MeSH": [], "Problems": []}
            for index, uid in enumerate(batch["uid"]):
                sections = [clean_caption(batch[field][index]) for field in caption_fields]
                caption = " ".join(section for section in sections if section)
                for view in views:
                    rows["image"].append(_image_cell(batch[f"img_{view}"][index]))
                    rows["caption"].append(caption)
                    rows["image_id"].append(f"{uid}_{view}")
                    rows["MeSH"].append(batch["MeSH"][index] if "MeSH" in batch else None)
                    rows["Problems"].append(batch["Problems"][index] if "Problems" in batch else None)
            return rows

        source_features = part.features or {}
        features = datasets.Features({**CORPUS_FEATURES,
                                      "MeSH": source_features.get("MeSH", datasets.Value("string")),
                                      "Problems": source_features.get("Problems", datasets.Value("string"))})
        if streaming_part:
            features["image"] = datasets.Image(decode=False)
            mapped = part.map(expand, batched=True, remove_columns=column_names, features=features)
            converted[split_name] = mapped.filter(_StreamFilter(IU_XRAY_HUB_ID)).map(_decode_row,
                                                                                      features=_decoded(features))
        else:
            mapped = part.map(expand, batched=True, remove_columns=column_names, features=features,
                              desc="map IU X-ray to the common schema")
            converted[split_name] = drop_invalid_rows(mapped)

    if None in converted:
        return converted[None]
    return type(raw)(converted)
