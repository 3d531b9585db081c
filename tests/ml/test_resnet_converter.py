"""torchvision ResNet-50 checkpoints load into transformers.ResNetModel (no torchvision)."""

from __future__ import annotations

import functools

import pytest
import torch

from ml.encoders.image import convert_torchvision_resnet50
from ml.errors import ModelLoadError


def _bn(prefix: str, channels: int) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.rand(channels),
        f"{prefix}.bias": torch.randn(channels),
        f"{prefix}.running_mean": torch.randn(channels),
        f"{prefix}.running_var": torch.rand(channels) + 0.5,
        f"{prefix}.num_batches_tracked": torch.tensor(7),
    }


@functools.cache
def torchvision_resnet50_state_dict() -> dict[str, torch.Tensor]:
    """Random tensors under the names and shapes torchvision.models.resnet50 uses."""
    torch.manual_seed(0)
    state = {"conv1.weight": torch.randn(64, 3, 7, 7), **_bn("bn1", 64)}
    in_channels = 64
    for stage, (blocks, planes) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=False), start=1):
        for block in range(blocks):
            prefix = f"layer{stage}.{block}"
            state[f"{prefix}.conv1.weight"] = torch.randn(planes, in_channels, 1, 1)
            state.update(_bn(f"{prefix}.bn1", planes))
            state[f"{prefix}.conv2.weight"] = torch.randn(planes, planes, 3, 3)
            state.update(_bn(f"{prefix}.bn2", planes))
            state[f"{prefix}.conv3.weight"] = torch.randn(planes * 4, planes, 1, 1)
            state.update(_bn(f"{prefix}.bn3", planes * 4))
            if block == 0:
                state[f"{prefix}.downsample.0.weight"] = torch.randn(planes * 4, in_channels, 1, 1)
                state.update(_bn(f"{prefix}.downsample.1", planes * 4))
            in_channels = planes * 4
    state["fc.weight"] = torch.randn(1000, 2048)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_converted_torchvision_resnet50_loads_strictly_into_resnet_model():
    from transformers import ResNetConfig, ResNetModel

    torchvision_state = torchvision_resnet50_state_dict()
    converted = convert_torchvision_resnet50(torchvision_state)
    model = ResNetModel(ResNetConfig())
    model.load_state_dict(converted, strict=True)  # every key present, every shape right
    assert set(converted) == set(model.state_dict())


@pytest.mark.parametrize(
    ("torchvision_key", "transformers_key"),
    [
        ("conv1.weight", "embedder.embedder.convolution.weight"),
        ("bn1.running_var", "embedder.embedder.normalization.running_var"),
        ("layer1.0.downsample.0.weight", "encoder.stages.0.layers.0.shortcut.convolution.weight"),
        ("layer1.0.downsample.1.bias", "encoder.stages.0.layers.0.shortcut.normalization.bias"),
        ("layer3.5.conv2.weight", "encoder.stages.2.layers.5.layer.1.convolution.weight"),
        ("layer4.2.bn3.running_mean", "encoder.stages.3.layers.2.layer.2.normalization.running_mean"),
    ],
)
def test_converter_maps_torchvision_keys_to_the_same_tensor(torchvision_key, transformers_key):
    torchvision_state = torchvision_resnet50_state_dict()
    converted = _converted()
    assert converted[transformers_key] is torchvision_state[torchvision_key]


@functools.cache
def _converted() -> dict[str, torch.Tensor]:
    return convert_torchvision_resnet50(torchvision_resnet50_state_dict())


def test_converter_drops_the_classifier_and_accepts_data_parallel_prefixes():
    state = {f"module.{key}": value for key, value in torchvision_resnet50_state_dict().items()}
    converted = convert_torchvision_resnet50(state)
    assert not any(key.startswith(("fc", "module")) for key in converted)


def test_converter_rejects_keys_of_another_architecture():
    with pytest.raises(ModelLoadError, match=r"classifier\.weight"):
        convert_torchvision_resnet50({"classifier.weight": torch.zeros(1)})


def test_torchvision_checkpoint_file_builds_the_resnet_image_encoder(tmp_path):
    from ml.encoders.image import build_image_encoder
    from ml.registry import resolve_weights

    path = tmp_path / "resnet50-torchvision.pth"
    torch.save(torchvision_resnet50_state_dict(), path)
    config = {"image": {"kind": "resnet", "feature_dim": 2048}, "preprocess": {"crop": 64}}
    encoder = build_image_encoder(config, resolve_weights(path))
    with torch.inference_mode():
        features = encoder(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 2048)
