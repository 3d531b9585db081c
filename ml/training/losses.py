"""Metric-learning losses for query -> product retrieval."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LearnedTemperature", "hardest_negative_triplet", "multi_positive_info_nce"]


def multi_positive_info_nce(
    queries: torch.Tensor, products: torch.Tensor, positives: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where a query may have several correct products.

    queries (Q, D) and products (P, D) are unit vectors; positives (Q, P) is True where
    product p answers query q (one product for a view of it; every matching product for
    an attribute query such as "rose gold ring"). Query->product: -log of the softmax mass
    on the positives; product->query: the same over the queries that point at a product.
    """
    logits = logit_scale * queries @ products.T
    positives = positives.to(torch.bool)
    q2p = -(torch.logsumexp(logits.masked_fill(~positives, float("-inf")), dim=1) - torch.logsumexp(logits, dim=1))
    has_query = positives.any(dim=0)
    logits_t = logits.T[has_query]
    positives_t = positives.T[has_query]
    p2q = -(
        torch.logsumexp(logits_t.masked_fill(~positives_t, float("-inf")), dim=1) - torch.logsumexp(logits_t, dim=1)
    )
    return 0.5 * (q2p.mean() + p2q.mean())


def hardest_negative_triplet(
    queries: torch.Tensor, products: torch.Tensor, positives: torch.Tensor, margin: float = 0.2
) -> torch.Tensor:
    """Triplet loss with the hardest in-batch negative per query (VSE++ style)."""
    similarity = queries @ products.T
    positives = positives.to(torch.bool)
    positive_score = similarity.masked_fill(~positives, float("inf")).min(dim=1).values
    hardest_negative = similarity.masked_fill(positives, float("-inf")).max(dim=1).values
    return F.relu(margin + hardest_negative - positive_score).mean()


class LearnedTemperature(nn.Module):
    """CLIP's learnable logit scale (1 / temperature), clamped so it cannot blow up."""

    def __init__(self, initial_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(1.0 / initial_temperature).log())
        self.max_scale = max_scale

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=self.max_scale)
