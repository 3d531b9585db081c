"""BERT-family text encoder with mean pooling over the attention mask.

Mean pooling (not [CLS]) is what all-MiniLM-L6-v2 was trained with, and it is a sound
default for bert-base too. Truncation: texts longer than ``text.max_length`` tokens are
cut at the END (``truncation=True``); ``ml.text.product_text`` puts the title and the
attributes first so only the tail of a long description is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ml.errors import ModelLoadError
from ml.registry import ResolvedWeights

logger = logging.getLogger(__name__)

__all__ = ["TextEncoder", "build_text_encoder", "build_tiny_tokenizer", "mean_pool"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors that the attention mask marks as real (not padding)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)


class TextEncoder(nn.Module):
    """texts -> mean-pooled features (N, feature_dim)."""

    def __init__(self, bert: nn.Module, tokenizer, max_length: int) -> None:
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer
        self.max_length = min(int(max_length), int(bert.config.max_position_embeddings))
        self.feature_dim = int(bert.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra) -> torch.Tensor:
        token_type_ids = extra.get("token_type_ids")
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        return self(**self.tokenize(texts))


def build_text_encoder(config: Mapping, weights: ResolvedWeights) -> TextEncoder:
    """The text encoder of a model config, with its resolved weights, in eval mode."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    section = config["text"]
    if section["kind"] != "bert":
        raise ModelLoadError(f"unknown text encoder kind {section['kind']!r}")
    if weights.kind == "random":
        tokenizer_spec = section.get("tokenizer", "builtin:tiny")
        if tokenizer_spec != "builtin:tiny":
            raise ModelLoadError(f"random text weights need tokenizer builtin:tiny, not {tokenizer_spec!r}")
        tokenizer = build_tiny_tokenizer(int(section["max_length"]))
        architecture = dict(section.get("architecture", {}))
        architecture.setdefault("vocab_size", len(tokenizer))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(weights.seed))
            bert = BertModel(BertConfig(**architecture), add_pooling_layer=False)
    else:
        assert weights.path is not None
        folder = weights.path if weights.path.is_dir() else weights.path.parent
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            bert = BertModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"cannot load the text model from {folder}: {exc}") from exc
    encoder = TextEncoder(bert, tokenizer, int(section["max_length"]))
    if encoder.feature_dim != int(section["feature_dim"]):
        raise ModelLoadError(
            f"text weights {weights.describe()} give {encoder.feature_dim}-d features, "
            f"the config says {section['feature_dim']}"
        )
    return encoder.eval()


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


def build_tiny_tokenizer(max_length: int = 32):
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
