"""Named constants shared by inference, training and evaluation.

Model shapes (dims, input sizes, fusion width) live in ``ml/configs/*.json``; what is
here is about how work is batched and where files go.
"""

from __future__ import annotations

from pathlib import Path

ML_DIR = Path(__file__).resolve().parent
CONFIG_DIR = ML_DIR / "configs"
WEIGHTS_DIR = ML_DIR / "weights"
# Git-ignored working files (backbone feature caches, weight hashes). Repo root/.cache/ml.
CACHE_DIR = ML_DIR.parent / ".cache" / "ml"

DEFAULT_MODEL = "effnet-lite2-minilm"

IMAGE_BATCH_SIZE = 32
TEXT_BATCH_SIZE = 64
FUSION_BATCH_SIZE = 256
PRODUCT_BATCH_SIZE = 32
# torch threads of the training and evaluation commands (the small servers have 2 cores).
DEFAULT_THREADS = 2

# Product texts are cut to this many characters before tokenising: the tokenizer then
# truncates to the model's max length; this only bounds the work on absurd inputs.
MAX_TEXT_CHARS = 4000
# Length of the content hash in a version string ("name@<hash>").
VERSION_HASH_CHARS = 12
