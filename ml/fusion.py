"""Attention fusion: one search vector from whatever modalities a product or query has.

Every available modality is a token: each photo's backbone features (a product may have
several photos), the BERT text features, and the text's lexical features (``ml.lexical``:
hashed words, present when the config has ``text.lexical``). Tokens are projected to a
common width and tagged with a learned modality embedding. A learned fusion query token
attends over them with multi-head scaled dot-product attention (learned W_Q, W_K, W_V);
a key-padding mask removes missing photos/modalities, whose inputs are also zeroed so
padding garbage (even NaN) cannot leak in. The result is projected to the shared search
space and L2-normalised. The same module embeds products (photos + text) and queries
(image only, text only, or both), which is what makes them comparable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ml.lexical import lexical_dim

__all__ = ["AttentionFusion", "build_fusion"]

IMAGE, TEXT, LEXICAL = 0, 1, 2
FUSION_QUERY_INIT_STD = 0.02


class AttentionFusion(nn.Module):
    def __init__(
        self,
        image_feature_dim: int,
        text_feature_dim: int,
        *,
        width: int = 256,
        heads: int = 4,
        dim: int = 512,
        dropout: float = 0.1,
        mlp_ratio: float = 0.0,
        image_dropout: float = 0.0,
        text_dropout: float = 0.0,
        lexical_dim: int = 0,
        frozen: tuple[str, ...] = (),
        image_adapter_rank: int = 0,
    ) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"fusion width {width} is not divisible by {heads} heads")
        self.width, self.heads, self.dim = width, heads, dim
        # Text features arrive as one row: [BERT features | lexical features].
        self.text_feature_dim = text_feature_dim
        # Dropout on the raw backbone features regularises training on a small catalogue.
        self.image_in = nn.Sequential(
            nn.LayerNorm(image_feature_dim), nn.Dropout(image_dropout), nn.Linear(image_feature_dim, width)
        )
        self.text_in = nn.Sequential(
            nn.LayerNorm(text_feature_dim), nn.Dropout(text_dropout), nn.Linear(text_feature_dim, width)
        )
        # A low-rank correction of the image projection (``fusion.image_adapter_rank``): with
        # ``image_in`` frozen at its orthogonal init, training can only add or remove a few
        # directions (shopper conditions: background, light, blur) to the backbone's geometry,
        # not learn a new one from the training catalogue's products.
        self.image_adapter = (
            nn.Sequential(
                nn.Linear(image_feature_dim, image_adapter_rank, bias=False),
                nn.Linear(image_adapter_rank, width, bias=False),
            )
            if image_adapter_rank
            else None
        )
        self.lexical_in = (
            nn.Sequential(nn.LayerNorm(lexical_dim), nn.Dropout(text_dropout), nn.Linear(lexical_dim, width))
            if lexical_dim
            else None
        )
        self.modality_embedding = nn.Parameter(torch.zeros(3 if lexical_dim else 2, width))
        self.fusion_query = nn.Parameter(torch.randn(width) * FUSION_QUERY_INIT_STD)
        self.w_q = nn.Linear(width, width)
        self.w_k = nn.Linear(width, width)
        self.w_v = nn.Linear(width, width)
        self.w_o = nn.Linear(width, width)
        self.token_norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        hidden = int(width * mlp_ratio)
        self.mlp = (
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
            if hidden
            else None
        )
        self.out_norm = nn.LayerNorm(width)
        self.to_search = nn.Linear(width, dim)
        self._geometry_preserving_init()
        # Layers named in the config's ``fusion.frozen`` keep this initialisation in training
        # (the default model keeps its text projections and value/output path orthogonal:
        # trained on one small catalogue's words they overfit, see ml/weights/MODEL_CARD.md).
        self.frozen = tuple(frozen)
        for name in self.frozen:
            if not isinstance(getattr(self, name, None), nn.Module):
                raise ValueError(f"cannot freeze {name!r}: the fusion has no such layer")
            getattr(self, name).requires_grad_(False)

    def _geometry_preserving_init(self) -> None:
        """Orthogonal projections on the value path, zero biases.

        Before training, an image-only (or text-only) vector is then a near-isometric
        random projection of the backbone features, so fused search starts from the
        backbones' own similarity and training (on a small catalogue) only adds to it.
        """
        inputs = [self.image_in[-1], self.text_in[-1]] + ([self.lexical_in[-1]] if self.lexical_in else [])
        for layer in (*inputs, self.w_v, self.w_o, self.to_search):
            assert isinstance(layer, nn.Linear)
            nn.init.orthogonal_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.image_adapter is not None:  # starts as no correction at all
            up = self.image_adapter[-1]
            assert isinstance(up, nn.Linear)
            nn.init.zeros_(up.weight)

    def forward(
        self,
        image_features: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        text_features: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fuse a batch into (B, dim) unit vectors.

        image_features (B, K, Di) with image_mask (B, K) True where a photo is present;
        text_features (B, Dt [+ Dl lexical]) with text_mask (B,) True where text is present;
        the lexical token is also masked where a text has no content words. Either side
        may be None (absent for the whole batch). Every row needs at least one token.
        """
        tokens, valid = [], []
        if image_features is not None:
            if image_mask is None:
                image_mask = torch.ones(image_features.shape[:2], dtype=torch.bool, device=image_features.device)
            clean = torch.where(image_mask.unsqueeze(-1), image_features, torch.zeros_like(image_features))
            normed = self.image_in[:-1](clean)
            token = self.image_in[-1](normed)
            if self.image_adapter is not None:
                token = token + self.image_adapter(normed)
            tokens.append(token + self.modality_embedding[IMAGE])
            valid.append(image_mask)
        if text_features is not None:
            if text_mask is None:
                text_mask = torch.ones(text_features.shape[0], dtype=torch.bool, device=text_features.device)
            clean = torch.where(text_mask.unsqueeze(-1), text_features, torch.zeros_like(text_features))
            dense, lexical = clean[:, : self.text_feature_dim], clean[:, self.text_feature_dim :]
            tokens.append((self.text_in(dense) + self.modality_embedding[TEXT]).unsqueeze(1))
            valid.append(text_mask.unsqueeze(1))
            if self.lexical_in is not None:
                tokens.append((self.lexical_in(lexical) + self.modality_embedding[LEXICAL]).unsqueeze(1))
                valid.append((text_mask & lexical.abs().sum(dim=-1).gt(0)).unsqueeze(1))
        if not tokens:
            raise ValueError("fusion needs image or text features")
        x = self.token_norm(torch.cat(tokens, dim=1))  # (B, T, W)
        mask = torch.cat(valid, dim=1)  # (B, T)
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every item needs at least one photo or a text")
        batch, length, _ = x.shape
        head_dim = self.width // self.heads
        query = self.w_q(self.fusion_query).view(1, self.heads, 1, head_dim)
        keys = self.w_k(x).view(batch, length, self.heads, head_dim).transpose(1, 2)  # (B, h, T, d)
        values = self.w_v(x).view(batch, length, self.heads, head_dim).transpose(1, 2)
        scores = (query * keys).sum(-1) / math.sqrt(head_dim)  # (B, h, T)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = self.dropout(scores.softmax(dim=-1))
        attended = (weights.unsqueeze(-1) * values).sum(dim=2).reshape(batch, self.width)
        fused = self.fusion_query + self.w_o(attended)
        if self.mlp is not None:
            fused = fused + self.mlp(fused)
        return F.normalize(self.to_search(self.out_norm(fused)), dim=-1)


def build_fusion(config: Mapping[str, Any]) -> AttentionFusion:
    """The fusion module a model config describes (weights are loaded by the registry)."""
    section = config["fusion"]
    return AttentionFusion(
        int(config["image"]["feature_dim"]),
        int(config["text"]["feature_dim"]),
        width=int(section["width"]),
        heads=int(section["heads"]),
        dim=int(section["dim"]),
        dropout=float(section.get("dropout", 0.0)),
        mlp_ratio=float(section.get("mlp_ratio", 0.0)),
        image_dropout=float(section.get("image_dropout", 0.0)),
        text_dropout=float(section.get("text_dropout", 0.0)),
        lexical_dim=lexical_dim(config),
        frozen=tuple(section.get("frozen", ())),
        image_adapter_rank=int(section.get("image_adapter_rank", 0)),
    )
