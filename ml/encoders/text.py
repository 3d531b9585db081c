"""Text encoders with mean pooling over the attention mask, registered by kind.

Kinds (``text.kind`` in the config; ``TEXT_ENCODERS``):

- ``bert``: ``transformers.BertModel`` (all-MiniLM-L6-v2, bert-base-uncased);
- ``transformers``: any ``transformers.AutoModel`` text encoder with its ``AutoTokenizer``,
  from a local ``save_pretrained`` folder or the local hub cache.

Mean pooling (not [CLS]) is what all-MiniLM-L6-v2 was trained with, and it is a sound
default for bert-base too. Truncation: texts longer than ``text.max_length`` tokens are
cut at the END (``truncation=True``); ``ml.text.product_text`` puts the title and the
attributes first so only the tail of a long description is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ml.encoders.auto import load_auto_model
from ml.encoders.kinds import KindRegistry
from ml.errors import ModelLoadError
from ml.registry import ResolvedWeights

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

__all__ = ["TEXT_ENCODERS", "TextEncoder", "build_text_encoder", "build_tiny_tokenizer", "mean_pool"]

TINY_TOKENIZER = "builtin:tiny"  # the code-built vocabulary of random test models
TINY_MAX_LENGTH = 32
_MIN_TOKENS = 1e-9  # guards the mean of a text whose mask is all padding


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that the attention mask marks as real (not padding)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(_MIN_TOKENS)


class TextEncoder(nn.Module):
    """texts -> mean-pooled features (N, feature_dim)."""

    def __init__(self, bert: nn.Module, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        model_config: Any = bert.config  # a transformers config: typed loosely by torch's Module
        positions = getattr(model_config, "max_position_embeddings", None) or max_length
        self.max_length = min(int(max_length), int(positions))
        self.feature_dim = int(model_config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return dict(
            self.tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        # Token types are passed only when the tokenizer makes them: not every encoder takes them.
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if extra.get("token_type_ids") is not None:
            inputs["token_type_ids"] = extra["token_type_ids"]
        hidden: torch.Tensor = self.bert(**inputs).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        encoded: torch.Tensor = self(**self.tokenize(texts))
        return encoded


# A builder makes the network and its tokenizer; build_text_encoder adds the pooling.
TextBackboneBuilder = Callable[[Mapping[str, Any], ResolvedWeights], tuple[nn.Module, "PreTrainedTokenizerBase"]]
TEXT_ENCODERS: KindRegistry[TextBackboneBuilder] = KindRegistry("text encoder")


def build_text_encoder(config: Mapping[str, Any], weights: ResolvedWeights) -> TextEncoder:
    """The text encoder of a model config, with its resolved weights, in eval mode."""
    section = config["text"]
    network, tokenizer = TEXT_ENCODERS.builder(section["kind"])(section, weights)
    encoder = TextEncoder(network, tokenizer, int(section["max_length"]))
    if encoder.feature_dim != int(section["feature_dim"]):
        raise ModelLoadError(
            f"text weights {weights.describe()} give {encoder.feature_dim}-d features, "
            f"the config says {section['feature_dim']}"
        )
    return encoder.eval()


@TEXT_ENCODERS.register("bert")
def _build_bert(section: Mapping[str, Any], weights: ResolvedWeights) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    from transformers import AutoTokenizer, BertConfig, BertModel

    if weights.kind == "random":
        tokenizer = _tiny_tokenizer(section)
        architecture = dict(section.get("architecture", {}))
        architecture.setdefault("vocab_size", len(tokenizer))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.init_seed())
            return BertModel(BertConfig(**architecture), add_pooling_layer=False), tokenizer
    folder = _weights_folder(weights)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        bert: nn.Module = BertModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the text model from {folder}: {exc}") from exc
    return bert, tokenizer


@TEXT_ENCODERS.register("transformers")
def _build_auto_text_model(
    section: Mapping[str, Any], weights: ResolvedWeights
) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    from transformers import AutoTokenizer

    if weights.kind == "random":
        tokenizer = _tiny_tokenizer(section)
        architecture = {"vocab_size": len(tokenizer), **section.get("architecture", {})}
        return load_auto_model({"architecture": architecture}, weights, role="text"), tokenizer
    folder = _weights_folder(weights)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer from {folder}: {exc}") from exc
    # Mean pooling reads the last hidden state: a pooler the checkpoint lacks is unused.
    return load_auto_model(section, weights, role="text", unused_prefixes=("pooler.",)), tokenizer


def _tiny_tokenizer(section: Mapping[str, Any]) -> PreTrainedTokenizerBase:
    tokenizer_spec = section.get("tokenizer", TINY_TOKENIZER)
    if tokenizer_spec != TINY_TOKENIZER:
        raise ModelLoadError(f"random text weights need tokenizer {TINY_TOKENIZER}, not {tokenizer_spec!r}")
    return build_tiny_tokenizer(int(section["max_length"]))


def _weights_folder(weights: ResolvedWeights) -> Path:
    path = weights.local_path()
    return path if path.is_dir() else path.parent


# A small WordPiece vocabulary written in code so the tiny test model needs no files:
# special tokens, characters (word-initial and ``##`` continuation) and shop words.
_TINY_WORDS = """
a an and the with in of for on to by set
ring rings earring earrings bangle bangles bracelet bracelets necklace necklaces pendant
pendants chain stud studs hoop hoops drop charm band
gold silver platinum rose white yellow two tone plated sterling metal 925 18k 22k 14k
diamond diamonds ruby emerald sapphire pearl pearls zirconia cubic gemstone stone stones
round oval heart square pear marquise princess cushion flower leaf star
small tiny large delicate classic modern minimalist vintage elegant
polished matte textured prong bezel pave setting design finish solitaire
"""


def build_tiny_tokenizer(max_length: int = TINY_MAX_LENGTH) -> PreTrainedTokenizerBase:
    """A deterministic BERT-style WordPiece tokenizer built without downloads."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,;:!?-'&/()%")
    vocab_list = specials + characters + [f"##{c}" for c in characters[:36]]
    vocab_list += [word for word in _TINY_WORDS.split() if word not in vocab_list]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_list))}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
