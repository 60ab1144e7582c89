"""A small causal transformer language model conditioned on one embedding through prefix tokens.

The conditioning follows ClipCap (Mokady, Hertz and Bermano, 2021,
arXiv:2111.09734): a mapping network turns one shared-space embedding
(image or text) into ``prefix_length`` vectors that sit in front of the word
embeddings, and the language model reads them as a prompt. Unlike ClipCap,
the language model is trained from scratch together with the mapping network,
because no pretrained language model is available offline and the phantom
vocabulary is tiny.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Architecture and training schedule of a caption decoder.

    Attributes:
        width: model width (token, prefix and position vectors).
        layers: transformer blocks.
        heads: attention heads per block; must divide ``width``.
        prefix_length: prefix vectors made from one embedding.
        max_length: maximum caption length in tokens, ``<eos>`` included, in
            training (longer captions are truncated) and generation.
        dropout: dropout in the blocks and on the prefix.
        epochs: passes over the training captions, raised when needed to
            reach ``min_steps``.
        min_steps: minimum number of optimizer steps. A small corpus gets more epochs,
            because a decoder trained for fewer steps repeats frequent words
            ("the the the") whatever the corpus size.
        batch_size: captions per optimizer step.
        learning_rate: peak AdamW learning rate, reached after a linear
            warm-up over the first 5 % of steps and decayed by a cosine to 0.
        weight_decay: AdamW weight decay.
        min_word_frequency: words seen fewer times in training become ``<unk>``.
        max_vocabulary_size: largest vocabulary, special tokens included; None
            keeps every word.
    """

    width: int = 64
    layers: int = 2
    heads: int = 4
    prefix_length: int = 4
    max_length: int = 40
    dropout: float = 0.1
    epochs: int = 6
    min_steps: int = 600
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    min_word_frequency: int = 1
    max_vocabulary_size: int | None = None

    def __post_init__(self) -> None:
        positive = (
            "width", "layers", "heads", "prefix_length", "max_length", "epochs", "min_steps", "batch_size",
            "min_word_frequency",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DecoderConfig.{name} must be a positive integer, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"DecoderConfig.heads ({self.heads}) must divide width ({self.width})")
        if self.max_length < 2:
            raise ValueError(f"DecoderConfig.max_length must be >= 2 (one word and <eos>), got {self.max_length}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DecoderConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0:
            raise ValueError(f"DecoderConfig.learning_rate must be positive, got {self.learning_rate}")


class CaptionDecoder(nn.Module):
    """Causal transformer over ``[prefix(embedding); word embeddings]`` predicting the next word.

    Args:
        embedding_dim: D, the size of the conditioning embeddings.
        vocabulary_size: V, the number of word ids.
        config: sizes; see :class:`DecoderConfig`.
    """

    def __init__(self, embedding_dim: int, vocabulary_size: int, config: DecoderConfig) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.vocabulary_size = vocabulary_size
        self.config = config
        width, prefix_length = config.width, config.prefix_length

        # ClipCap's MLP mapping network: D -> hidden -> prefix_length * width.
        hidden = max(width, prefix_length * width // 2)
        self.mapping = nn.Sequential(
            nn.Linear(embedding_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, prefix_length * width),
        )
        self.prefix_dropout = nn.Dropout(config.dropout)
        self.token_embedding = nn.Embedding(vocabulary_size, width)
        self.position_embedding = nn.Parameter(torch.randn(prefix_length + config.max_length, width) * 0.02)
        block = nn.TransformerEncoderLayer(
            d_model=width,
            nhead=config.heads,
            dim_feedforward=4 * width,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(block, config.layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocabulary_size, bias=False)
        self.lm_head.weight = self.token_embedding.weight
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def prefix(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Map embeddings (B, D) to prefix vectors (B, prefix_length, width)."""
        prefix = self.mapping(embeddings).view(-1, self.config.prefix_length, self.config.width)
        return self.prefix_dropout(prefix)

    def forward_prefix(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Return next-word logits (B, T + 1, V) after the prefix and each of the T tokens.

        Row ``t`` of the output predicts token ``t`` of the caption: row 0 comes
        from the last prefix position, row ``t`` from token ``t - 1``.
        """
        sequence = torch.cat([prefix, self.token_embedding(tokens)], dim=1)
        length = sequence.shape[1]
        sequence = sequence + self.position_embedding[:length]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=sequence.device, dtype=sequence.dtype)
        hidden = self.blocks(sequence, mask=mask, is_causal=True)
        hidden = self.final_norm(hidden[:, self.config.prefix_length - 1 :])
        return self.lm_head(hidden)

    def forward(self, embeddings: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Return next-word logits (B, T + 1, V) for embeddings (B, D) and word ids (B, T)."""
        return self.forward_prefix(self.prefix(embeddings), tokens)
