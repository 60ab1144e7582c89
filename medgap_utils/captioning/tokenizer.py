"""Word-level tokenizer of the caption decoder, built from the training captions.

Why words and not open_clip's byte-pair encoding: the phantom corpus is
written from templates with a closed vocabulary of a few hundred words. A
word vocabulary then gives short sequences (one token per word) and an output
layer of a few hundred rows instead of 49,408, whose softmax would dominate
decoding time on a CPU. It also needs no tokenizer files. Words are those of
:func:`medgap_utils.metrics.captions.tokenize_caption` with punctuation kept,
so the decoder learns punctuation and the caption metrics see the same words.
Captions come back lowercase. On open-vocabulary text (ROCO) the
``min_frequency`` and ``max_size`` limits bound the vocabulary and rarer words
become ``<unk>``.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence

import torch

from medgap_utils.metrics.captions import tokenize_caption

PAD = "<pad>"
EOS = "<eos>"
UNK = "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)

# Detokenization: no space before closing punctuation, none after an opening bracket.
_SPACE_BEFORE_CLOSING = re.compile(r" ([,.;:!?%)\]])")
_SPACE_AFTER_OPENING = re.compile(r"([(\[]) ")


class WordTokenizer:
    """Maps captions to word ids and back; ids 0, 1, 2 are ``<pad>``, ``<eos>``, ``<unk>``.

    Args:
        words: the vocabulary, ``SPECIAL_TOKENS`` first, each word once.

    Raises:
        ValueError: if the special tokens are not first or a word repeats.
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if tuple(words[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"words must start with {SPECIAL_TOKENS}, got {words[:3]}; build it with WordTokenizer.fit.")
        if len(set(words)) != len(words):
            raise ValueError("words must not repeat; build the vocabulary with WordTokenizer.fit.")
        self.words = words
        self.ids = {word: index for index, word in enumerate(words)}
        self.pad_id, self.eos_id, self.unk_id = (self.ids[token] for token in SPECIAL_TOKENS)

    @classmethod
    def fit(cls, captions: Iterable[str], *, min_frequency: int = 1, max_size: int | None = None) -> WordTokenizer:
        """Build the vocabulary of ``captions``: words seen ``min_frequency`` times or more.

        Args:
            captions: training captions.
            min_frequency: words seen fewer times map to ``<unk>``.
            max_size: keep at most this many words (special tokens included),
                the most frequent first; None keeps all.

        Raises:
            ValueError: if ``min_frequency`` < 1 or ``max_size`` <= the number of special tokens.
        """
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        if max_size is not None and max_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"max_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {max_size}")

        counts = collections.Counter(word for caption in captions for word in tokenize_caption(caption, keep_punctuation=True))
        # Most frequent first, ties alphabetical, so equal captions give equal ids.
        ranked = sorted((word for word, count in counts.items() if count >= min_frequency), key=lambda word: (-counts[word], word))
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIAL_TOKENS)]
        return cls(list(SPECIAL_TOKENS) + ranked)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        """Return the word ids of ``caption``, without ``<eos>``."""
        return [self.ids.get(word, self.unk_id) for word in tokenize_caption(caption, keep_punctuation=True)]

    def encode_batch(self, captions: Sequence[str], max_length: int) -> torch.Tensor:
        """Return ids of shape (N, max_length): words, ``<eos>``, then ``<pad>``.

        A caption longer than ``max_length - 1`` words is truncated and keeps
        its ``<eos>``, so a decoder trained on it still learns to stop.
        """
        batch = torch.full((len(captions), max_length), self.pad_id, dtype=torch.long)
        for row, caption in enumerate(captions):
            ids = self.encode(caption)[: max_length - 1] + [self.eos_id]
            batch[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return batch

    def decode(self, ids: Iterable[int]) -> str:
        """Return the caption of ``ids``, stopping at ``<eos>`` and skipping ``<pad>``."""
        words = []
        for index in ids:
            index = int(index)
            if index == self.eos_id:
                break
            if index != self.pad_id:
                words.append(self.words[index])
        text = " ".join(words)
        text = _SPACE_BEFORE_CLOSING.sub(r"\1", text)
        return _SPACE_AFTER_OPENING.sub(r"\1", text)
