"""Lexical features: the words of a text as a hashed, fixed-width vector.

A mean-pooled BERT vector of a whole product text blurs its specific words: a shopper who
types "rope-textured band with coral" shares five words with one product's description,
and a 256-token average barely moves. This is the sparse half of hybrid (lexical + dense)
retrieval, packed so it fits the fusion as one more token and the database as part of the
text features: words and adjacent-word pairs, signed feature hashing into ``dim`` buckets
(the hashing trick; inner products are preserved in expectation), sublinear term
frequency, L2-normalised. Nothing is fitted to a corpus, so a product's features never
change when other products are added, and words never seen in training still match.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.scoring import words

__all__ = ["LexicalHasher", "build_lexical", "lexical_dim", "terms"]

_BUCKET_CACHE_SIZE = 65536  # distinct (term, dim) pairs whose hash is kept


def terms(text: str) -> list[str]:
    """Content words (``ml.scoring.words``) and adjacent content-word pairs of a text."""
    content = words(text)
    return content + [f"{a} {b}" for a, b in itertools.pairwise(content)]


@functools.lru_cache(maxsize=_BUCKET_CACHE_SIZE)
def _bucket(term: str, dim: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little")
    return digest % dim, 1.0 if (digest >> 63) & 1 else -1.0


class LexicalHasher:
    """texts -> (N, dim) float32 unit vectors (all zero for a text without content words)."""

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError("lexical dim must be >= 1")
        self.dim = int(dim)

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for term, count in Counter(terms(str(text))).items():
                bucket, sign = _bucket(term, self.dim)
                out[row, bucket] += sign * (1.0 + math.log(count))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        unit: NDArray[np.float32] = np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)
        return unit


def lexical_dim(config: Mapping[str, Any]) -> int:
    """Width of a config's lexical features (0: the model has none)."""
    return int(config["text"].get("lexical", {}).get("dim", 0))


def build_lexical(config: Mapping[str, Any]) -> LexicalHasher | None:
    dim = lexical_dim(config)
    return LexicalHasher(dim) if dim else None
