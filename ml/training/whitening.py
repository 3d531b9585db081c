"""Nuisance whitening: the image projection in closed form, from views of the training photos.

Trained by gradient descent on one catalogue's products, the image projection learns that
catalogue (its 188 products and the training recipe's views) and gains nothing on another
shop's photos (``ml/weights/MODEL_CARD.md``, "why the fusion lost generality"). What does
carry over is *which directions of the backbone's features shopper conditions move*
(background, light, tilt, blur, JPEG): they are the same for any piece of jewelry. This
module estimates them from (view - its catalog photo) differences, whitens them
(shrinkage towards the identity), and keeps the ``width`` directions along which the catalog
photos themselves differ most after whitening. The result initialises the fusion's
``image_in`` projection; with the layer frozen, training cannot bend it towards one catalogue.
"""

from __future__ import annotations

import torch
from torch import nn

from ml.fusion import AttentionFusion

__all__ = ["DEFAULT_SHRINKAGE", "nuisance_whitening", "set_image_projection"]

# Nuisance covariance + shrinkage * mean variance * identity: 1.0 was best of 0.1 / 1 / 10
# on shopper views AND real other views of the out-of-domain set (model card).
DEFAULT_SHRINKAGE = 1.0


def nuisance_whitening(
    photos: torch.Tensor, views: torch.Tensor, width: int, shrinkage: float = DEFAULT_SHRINKAGE
) -> tuple[torch.Tensor, torch.Tensor]:
    """(width, Di) weight and (width,) bias of the whitening projection.

    ``photos`` (P, Di) and ``views`` (P, V, Di) are features as ``image_in`` sees them (after
    its LayerNorm). Scaled so a photo's projection has the squared norm of an orthogonal
    projection's (``width`` on average), so the attention sees tokens of the usual size.
    """
    photos, views = photos.double(), views.double()
    differences = (views - photos[:, None, :]).reshape(-1, photos.shape[-1])
    nuisance = differences.T @ differences / len(differences)
    ridge = shrinkage * nuisance.diagonal().mean()
    values, vectors = torch.linalg.eigh(nuisance + ridge * torch.eye(len(nuisance), dtype=nuisance.dtype))
    whiten = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    mean = photos.mean(dim=0)
    everything = torch.cat([photos, views.reshape(-1, photos.shape[-1])])
    whitened = (everything - mean) @ whiten
    _, _, directions = torch.linalg.svd(whitened - whitened.mean(dim=0), full_matrices=False)
    weight = directions[:width] @ whiten  # (width, Di)
    scale = (width / ((photos - mean) @ weight.T).pow(2).sum(dim=1).mean()).sqrt()
    weight = weight * scale
    return weight.float(), (-(weight @ mean)).float()


def set_image_projection(fusion: AttentionFusion, photos: torch.Tensor, views: torch.Tensor, shrinkage: float) -> None:
    """Put the nuisance whitening of these raw features into ``fusion.image_in``."""
    norm, projection = fusion.image_in[0], fusion.image_in[-1]
    assert isinstance(norm, nn.LayerNorm)
    assert isinstance(projection, nn.Linear)
    with torch.no_grad():
        weight, bias = nuisance_whitening(norm(photos), norm(views), projection.out_features, shrinkage)
        projection.weight.copy_(weight)
        projection.bias.copy_(bias)
