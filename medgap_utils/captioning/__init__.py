"""Caption decoding from shared-space embeddings, in the supervised and text-only regimes.

The usual entry points:

- :func:`train_captioner` trains a prefix-conditioned transformer decoder on
  (embedding, caption) pairs; :meth:`Captioner.generate` writes captions.
- :func:`evaluate_captioning` trains, captions a test set and scores it
  (BLEU, ROUGE-L, CIDEr, METEOR, clinical correctness), cached.
- :func:`benchmark_captioning` runs that for several models, settings and
  seeds and returns mean ± std tables and example captions;
  :func:`captioning_row` gives one run's scores as flat columns for the
  benchmark runner.
"""

from medgap_utils.captioning.benchmark import (
    DEFAULT_SETTINGS,
    SUPERVISED,
    TABLE_METRICS,
    TEXT_ONLY,
    TEXT_ONLY_CEILING,
    TEXT_ONLY_NOISE,
    CaptioningBenchmark,
    CaptioningSetting,
    EmbeddingRun,
    benchmark_captioning,
    captioning_row,
)
from medgap_utils.captioning.decoder import CaptionDecoder, DecoderConfig
from medgap_utils.captioning.decoding import beam_search, greedy_decode
from medgap_utils.captioning.evaluate import REGIMES, evaluate_captioning
from medgap_utils.captioning.tokenizer import WordTokenizer
from medgap_utils.captioning.train import CAPDEC_NOISE_STD, Captioner, train_captioner

__all__ = [
    "CAPDEC_NOISE_STD",
    "DEFAULT_SETTINGS",
    "REGIMES",
    "SUPERVISED",
    "TABLE_METRICS",
    "TEXT_ONLY",
    "TEXT_ONLY_CEILING",
    "TEXT_ONLY_NOISE",
    "CaptionDecoder",
    "Captioner",
    "CaptioningBenchmark",
    "CaptioningSetting",
    "DecoderConfig",
    "EmbeddingRun",
    "WordTokenizer",
    "beam_search",
    "benchmark_captioning",
    "captioning_row",
    "evaluate_captioning",
    "greedy_decode",
    "train_captioner",
]
