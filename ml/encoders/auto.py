"""Any ``transformers.AutoModel`` backbone, for the generic ``transformers`` encoder kinds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ml.errors import ModelLoadError
from ml.registry import ResolvedWeights

__all__ = ["load_auto_model"]


def load_auto_model(
    section: Mapping[str, Any], weights: ResolvedWeights, *, role: str, unused_prefixes: tuple[str, ...] = ()
) -> nn.Module:
    """A ``transformers.AutoModel`` from a weights folder, or random from ``architecture``.

    ``architecture`` holds ``model_type`` and the config fields of a random model (tests).
    A checkpoint that leaves any used weight uninitialised raises ModelLoadError: those
    weights would be random and the features meaningless.
    """
    from transformers import AutoConfig, AutoModel

    if weights.kind == "random":
        architecture = dict(section.get("architecture", {}))
        model_type = architecture.pop("model_type", None)
        if not model_type:
            raise ModelLoadError(f"random {role} weights of kind transformers need architecture.model_type")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.init_seed())
            random_model: nn.Module = AutoModel.from_config(AutoConfig.for_model(model_type, **architecture))
        return random_model
    path = weights.local_path()
    folder = path if path.is_dir() else path.parent
    try:
        model, info = AutoModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load the {role} model from {folder}: {exc}") from exc
    missing = [key for key in info.get("missing_keys", []) if not key.startswith(unused_prefixes)]
    if missing:
        raise ModelLoadError(f"{role} weights in {folder} do not fit {type(model).__name__}: missing {missing[:5]}")
    loaded: nn.Module = model
    return loaded
