"""Training a caption decoder on (embedding, caption) pairs, and the trained :class:`Captioner`.

The same trainer serves both regimes of the book: pass image embeddings for
the supervised regime, text embeddings of the same captions for the text-only
regime. ``noise_std`` adds Gaussian noise to each training embedding at every
step, as CapDec does (Nukrai, Mokady and Globerson, 2022, arXiv:2211.00575),
so that a text-trained decoder tolerates inputs near, not on, the text
embeddings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from medgap_utils.captioning.decoder import CaptionDecoder, DecoderConfig
from medgap_utils.captioning.decoding import beam_search, greedy_decode
from medgap_utils.captioning.tokenizer import WordTokenizer
from medgap_utils.config import cache_dir, config_key
from medgap_utils.io import atomic_path
from medgap_utils.metrics._validation import check_matrix

LOGGER = logging.getLogger(__name__)

# CapDec trains with noise of variance 0.016 on CLIP ViT-B/32 text embeddings.
CAPDEC_NOISE_STD = math.sqrt(0.016)

# Bump when training or the saved format changes, so old cached decoders are not reused.
CACHE_VERSION = 2


@dataclasses.dataclass
class Captioner:
    """A trained caption decoder with its tokenizer.

    Attributes:
        decoder: the model, in eval mode.
        tokenizer: the word vocabulary it was trained with.
        noise_std: standard deviation of the training noise (0 for none).
        seed: the training seed.
        losses: mean training cross-entropy (nats per token) of each epoch.
        train_seconds: wall-clock training time; NaN when loaded from the cache.
    """

    decoder: CaptionDecoder
    tokenizer: WordTokenizer
    noise_std: float = 0.0
    seed: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    train_seconds: float = math.nan

    @property
    def config(self) -> DecoderConfig:
        """The decoder's architecture and training schedule."""
        return self.decoder.config

    def generate(
        self,
        embeddings: torch.Tensor,
        *,
        beam_size: int = 3,
        length_penalty: float = 1.0,
        max_length: int | None = None,
        batch_size: int = 256,
        num_threads: int | None = 1,
        progress: bool = False,
    ) -> list[str]:
        """Generate one caption per embedding.

        Args:
            embeddings: (N, D) L2-normalized embeddings, D as in training.
            beam_size: 1 decodes greedily, more runs beam search.
            length_penalty: beam search ranks by log-probability / length ** this.
            max_length: decoding steps; defaults to the config's ``max_length``.
            batch_size: embeddings decoded together.
            num_threads: torch CPU threads while decoding (see :func:`train_captioner`).
            progress: show a progress bar over batches.

        Returns:
            N lowercase captions; one may be empty when ``<eos>`` comes first.

        Raises:
            ValueError: if ``embeddings`` is not (N, D) with this D, contains
                NaN or infinity, or is not L2-normalized. Also if
                ``beam_size`` or ``max_length`` is not positive.
            TypeError: if ``embeddings`` is not a tensor or array.
        """
        embeddings = check_matrix(embeddings, "embeddings")
        if embeddings.shape[1] != self.decoder.embedding_dim:
            raise ValueError(
                f"embeddings have dimension {embeddings.shape[1]}, but this captioner was trained on "
                f"dimension {self.decoder.embedding_dim}; pass embeddings from the same shared space."
            )
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        max_length = self.config.max_length if max_length is None else max_length
        if not 1 <= max_length <= self.config.max_length:
            raise ValueError(f"max_length must be in [1, {self.config.max_length}] (the decoder's positions), got {max_length}")

        device = next(self.decoder.parameters()).device
        banned = [self.tokenizer.pad_id, self.tokenizer.unk_id]
        self.decoder.eval()
        captions = []
        starts = range(0, embeddings.shape[0], batch_size)
        with cpu_threads(num_threads):
            for start in tqdm(starts, desc="captioning", disable=not progress, leave=False):
                batch = embeddings[start : start + batch_size].to(device)
                if beam_size == 1:
                    ids = greedy_decode(
                        self.decoder, batch, eos_id=self.tokenizer.eos_id, max_length=max_length, banned_ids=banned
                    )
                else:
                    ids = beam_search(
                        self.decoder,
                        batch,
                        eos_id=self.tokenizer.eos_id,
                        max_length=max_length,
                        beam_size=beam_size,
                        length_penalty=length_penalty,
                        banned_ids=banned,
                    )
                captions.extend(self.tokenizer.decode(row) for row in ids)
        return captions

    def save(self, path: str | os.PathLike) -> Path:
        """Write the captioner to ``path`` atomically (a ``torch.save`` file) and return the path."""
        state = {
            "version": CACHE_VERSION,
            "config": dataclasses.asdict(self.config),
            "embedding_dim": self.decoder.embedding_dim,
            "words": self.tokenizer.words,
            "state_dict": self.decoder.state_dict(),
            "noise_std": self.noise_std,
            "seed": self.seed,
            "losses": self.losses,
        }
        with atomic_path(path) as temporary:
            torch.save(state, temporary)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Captioner:
        """Read a captioner written by :meth:`save`.

        Raises:
            ValueError: if the file was written by an incompatible version.
        """
        state = torch.load(path, map_location=map_location, weights_only=True)
        if state.get("version") != CACHE_VERSION:
            raise ValueError(
                f"{path} contains a captioner saved in format {state.get('version')}, but this version reads "
                f"format {CACHE_VERSION}; delete the file and train the captioner again."
            )
        tokenizer = WordTokenizer(state["words"])
        decoder = CaptionDecoder(state["embedding_dim"], len(tokenizer), DecoderConfig(**state["config"]))
        decoder.load_state_dict(state["state_dict"])
        decoder.eval()
        return cls(decoder, tokenizer, noise_std=state["noise_std"], seed=state["seed"], losses=list(state["losses"]))


def train_captioner(
    embeddings: torch.Tensor,
    captions: Sequence[str],
    *,
    config: DecoderConfig | None = None,
    noise_std: float = 0.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    num_threads: int | None = 1,
    cache: bool = True,
    progress: bool = True,
) -> Captioner:
    """Train a caption decoder to produce ``captions[i]`` from ``embeddings[i]``.

    Teacher-forced next-word cross-entropy, AdamW with a linear warm-up and a
    cosine decay, gradient norm clipped at 1. The result depends only on the
    inputs and ``seed``: the same seed gives the same weights on the same
    hardware and torch version. The global random state is left untouched.

    Args:
        embeddings: (N, D) L2-normalized conditioning embeddings: image
            embeddings for the supervised regime, text embeddings of the
            same captions for the text-only regime.
        captions: the N target captions, row-aligned with ``embeddings``.
        config: architecture and schedule; defaults to ``DecoderConfig()``.
        noise_std: standard deviation of the Gaussian noise added to every
            coordinate of each training embedding at every step (not
            re-normalized); 0 for none, ``CAPDEC_NOISE_STD`` for CapDec's value.
        seed: seeds initialization, shuffling, dropout and noise.
        device: where to train; defaults to CUDA when available, else CPU.
        num_threads: torch CPU threads during training, restored afterwards;
            None keeps torch's setting. The default is one because the
            default model's matrices are too small to gain from more. On a
            loaded 2-core machine, two threads made training about 9 times
            slower in CPU time than one (89 s against 10 s for 5 epochs on
            4,096 captions).
        cache: reuse and store the trained captioner under
            ``cache_dir("captioning", "captioners")``, keyed by the inputs.
        progress: show a progress bar over epochs.

    Returns:
        The trained :class:`Captioner`, on ``device``, in eval mode.

    Raises:
        ValueError: if the lengths differ, a caption is empty, ``noise_std``
            is negative or not finite, or ``embeddings`` is not a finite,
            L2-normalized (N, D) matrix.
        TypeError: if a caption is not a string or ``embeddings`` is not a
            tensor or array.
    """
    config = DecoderConfig() if config is None else config
    embeddings, captions = _check_training_inputs(embeddings, captions, noise_std)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)

    path = None
    if cache:
        key = captioner_key(embeddings, captions, config=config, noise_std=noise_std, seed=seed)
        path = cache_dir("captioning", "captioners") / f"{key}.pt"
        if path.exists():
            LOGGER.info("Loading the cached captioner %s", path)
            return Captioner.load(path, map_location=device)

    started = time.perf_counter()
    # NOTE: only the CPU path has run in tests; training on CUDA is untested.
    with cpu_threads(num_threads), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        captioner = _fit(embeddings, captions, config=config, noise_std=noise_std, seed=seed, device=device, progress=progress)
    captioner.train_seconds = time.perf_counter() - started
    LOGGER.info(
        "Trained a captioner on %d captions in %.1f s (final loss %.3f)",
        len(captions), captioner.train_seconds, captioner.losses[-1],
    )

    if path is not None:
        captioner.save(path)
    return captioner


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads, then restore the previous count."""
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {count}")
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def captioner_key(
    embeddings: torch.Tensor, captions: Sequence[str], *, config: DecoderConfig, noise_std: float, seed: int
) -> str:
    """Return the cache key of a captioner trained on these inputs."""
    return config_key(
        {
            "version": CACHE_VERSION,
            "embeddings": tensor_digest(embeddings),
            "captions": text_digest(captions),
            "config": dataclasses.asdict(config),
            "noise_std": float(noise_std),
            "seed": int(seed),
        }
    )


def tensor_digest(tensor: torch.Tensor) -> str:
    """Return a SHA-256 of a tensor's shape and float32 values."""
    array = tensor.detach().to(torch.float32).cpu().contiguous().numpy()
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def text_digest(texts: Sequence[str]) -> str:
    """Return a SHA-256 of a sequence of strings (order matters)."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _check_training_inputs(
    embeddings: torch.Tensor, captions: Sequence[str], noise_std: float
) -> tuple[torch.Tensor, list[str]]:
    embeddings = check_matrix(embeddings, "embeddings")
    if isinstance(captions, str) or not isinstance(captions, Sequence):
        raise TypeError(f"captions must be a sequence of strings, got {type(captions).__name__}")
    captions = list(captions)
    if len(captions) != embeddings.shape[0]:
        raise ValueError(
            f"captions has {len(captions)} items but embeddings has {embeddings.shape[0]} rows; "
            "pass one caption per embedding row, in the same order."
        )
    for index, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"captions[{index}] must be a str, got {type(caption).__name__}")
        if not caption.strip():
            raise ValueError(f"captions[{index}] is empty; a decoder cannot learn an empty target. Drop that row.")
    if not math.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std}")
    return embeddings, captions


def _fit(
    embeddings: torch.Tensor,
    captions: list[str],
    *,
    config: DecoderConfig,
    noise_std: float,
    seed: int,
    device: torch.device,
    progress: bool,
) -> Captioner:
    tokenizer = WordTokenizer.fit(captions, min_frequency=config.min_word_frequency, max_size=config.max_vocabulary_size)
    targets = tokenizer.encode_batch(captions, config.max_length)
    # Drop trailing all-pad columns: shorter sequences, same loss.
    used_length = int((targets != tokenizer.pad_id).sum(dim=1).max())
    targets = targets[:, :used_length].to(device)
    embeddings = embeddings.to(device)

    decoder = CaptionDecoder(embeddings.shape[1], len(tokenizer), config).to(device)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(captions) / config.batch_size)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    total_steps = steps_per_epoch * epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(total_steps))
    loss_function = torch.nn.CrossEntropyLoss(ignore_index=tokenizer.pad_id)
    generator = torch.Generator().manual_seed(seed)

    losses = []
    decoder.train()
    for _ in tqdm(range(epochs), desc="training captioner", disable=not progress, leave=False):
        order = torch.randperm(len(captions), generator=generator).to(device)
        epoch_loss, epoch_tokens = 0.0, 0
        for start in range(0, len(captions), config.batch_size):
            rows = order[start : start + config.batch_size]
            batch_embeddings, batch_targets = embeddings[rows], targets[rows]

            if noise_std > 0:
                noise = torch.randn(batch_embeddings.shape, generator=generator).to(device)
                batch_embeddings = batch_embeddings + noise_std * noise

            logits = decoder(batch_embeddings, batch_targets[:, :-1])
            loss = loss_function(logits.reshape(-1, logits.shape[-1]), batch_targets.reshape(-1))

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
            optimizer.step()
            schedule.step()

            tokens = int((batch_targets != tokenizer.pad_id).sum())
            epoch_loss += loss.detach().item() * tokens
            epoch_tokens += tokens
        losses.append(epoch_loss / epoch_tokens)

    decoder.eval()
    return Captioner(decoder, tokenizer, noise_std=float(noise_std), seed=int(seed), losses=losses)


def _warmup_cosine(total_steps: int):
    warmup = max(1, round(0.05 * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
