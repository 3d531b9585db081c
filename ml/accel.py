"""Fast CPU inference for the image backbone, the costly part of indexing and photo queries.

Backends, by name (measured by ``benchmarks/encode.py``, chosen in ``docs/performance.md``):

- ``eager``: the PyTorch module as built. The reference: every other backend is checked
  against it, and training always uses it.
- ``channels-last``: the same module in channels-last memory format (PyTorch only).
- ``onnx``: the network exported to ONNX and run by ONNX Runtime in fp32. ORT folds
  BatchNorm into the convolutions, fuses ReLU6 and runs blocked (NCHWc) depthwise
  kernels; on EfficientNet-Lite2 it is several times faster than eager on 2 cores with
  vectors equal to eager's to ~1e-6 (cosine >= 0.9999).

The exported file is derived data: it is built on first use into the git-ignored cache
(``.cache/ml/onnx/``), named by a hash of the architecture, the input size and the
content of the image weights, so new weights never reuse an old graph. A new session
is checked against eager on a fixed input before it serves; if that check or the
export fails, the model keeps running eager and says so in the log.

Build the session in the process that uses it (as indexing/engine.py loads models: per
web or Celery worker, after the fork): ONNX Runtime's thread pool does not survive fork.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ml.constants import CACHE_DIR
from ml.registry import weights_hash

if TYPE_CHECKING:  # pragma: no cover
    from ml.model import SearchModel

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "OnnxImageEncoder", "accelerate_image_encoder", "use_backend"]

BACKENDS = ("eager", "channels-last", "onnx")
DEFAULT_BACKEND = "eager"  # what ml.model.load_model uses unless told otherwise
ONNX_CACHE_DIR = CACHE_DIR / "onnx"
ONNX_OPSET = 17
# Bump when the export procedure changes, so cached graphs are rebuilt.
EXPORT_FORMAT = 1
# A backend whose vectors drift further than this from eager on the check input is refused.
MIN_CHECK_COSINE = 0.999
_INPUT, _OUTPUT = "pixel_values", "features"


class ChannelsLastImageEncoder(nn.Module):
    """Eager module whose weights and inputs are channels-last (NHWC) in memory."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(encoder).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.feature_dim = getattr(encoder, "feature_dim", None)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features: torch.Tensor = self.encoder(pixel_values.contiguous(memory_format=torch.channels_last))
        return features.contiguous()


class OnnxImageEncoder(nn.Module):
    """ONNX Runtime session behind the ImageEncoder interface: pixels (N, 3, H, W) -> (N, C)."""

    def __init__(self, session: Any, feature_dim: int | None, source: str) -> None:
        super().__init__()
        self.session = session
        self.feature_dim = feature_dim
        self.source = source  # the cached file, or "memory"

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels = np.ascontiguousarray(pixel_values.detach().cpu().numpy(), dtype=np.float32)
        if pixels.shape[0] == 0:
            return torch.zeros((0, self.feature_dim or 0), dtype=torch.float32)
        (features,) = self.session.run([_OUTPUT], {_INPUT: pixels})
        return torch.from_numpy(features)

    def extra_repr(self) -> str:
        return f"onnxruntime, {self.source}"


def onnx_cache_key(config: Mapping[str, Any], image_weights_hash: str) -> str:
    """Names the exported graph: architecture, input size, weights content, exporter."""
    payload = {
        "image": {k: v for k, v in config["image"].items() if k not in ("weights", "description")},
        "crop": int(config["preprocess"]["crop"]),
        "weights": image_weights_hash,
        "opset": ONNX_OPSET,
        "format": EXPORT_FORMAT,
        "torch": ".".join(torch.__version__.split("+")[0].split(".")[:2]),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _export_onnx(encoder: nn.Module, crop: int) -> bytes:
    """The eager encoder as an ONNX graph with a dynamic batch axis."""
    buffer = io.BytesIO()
    sample = torch.zeros((1, 3, crop, crop), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript-exporter deprecation and tracer notes
        torch.onnx.export(
            copy.deepcopy(encoder).eval(),
            (sample,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to any binary stream
            input_names=[_INPUT],
            output_names=[_OUTPUT],
            dynamic_axes={_INPUT: {0: "batch"}, _OUTPUT: {0: "batch"}},
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return buffer.getvalue()


def _store(path: Path, data: bytes) -> bool:
    """Atomic write (two workers exporting at once both end with a whole file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return True
    except OSError:
        logger.warning("cannot write the ONNX cache %s: keeping the graph in memory", path, exc_info=True)
        return False


def ort_session(model: bytes | str | os.PathLike[str], *, threads: int | None = None, spinning: bool = False) -> Any:
    """An ONNX Runtime CPU session sized like torch (``torch.get_num_threads()``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        # Off by default: ORT's threads busy-wait after each run, stealing the cores that
        # torch (text encoder, fusion) and the other workers need next on a small box.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _check_against_eager(encoder: nn.Module, candidate: nn.Module, crop: int) -> float:
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn((2, 3, crop, crop), generator=generator)
    with torch.inference_mode():
        want = encoder(pixels).float().numpy()
        got = candidate(pixels).float().numpy()
    cosine = (want * got).sum(1) / (np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
    return float(cosine.min())


def onnx_image_encoder(
    encoder: nn.Module,
    config: Mapping[str, Any],
    image_weights_hash: str,
    *,
    cache_dir: Path | None = None,
    threads: int | None = None,
    spinning: bool = False,
) -> OnnxImageEncoder:
    """The ONNX Runtime encoder of ``encoder``, exported once into the cache."""
    crop = int(config["preprocess"]["crop"])
    path = (
        Path(cache_dir or ONNX_CACHE_DIR) / f"{config['name']}-image-{onnx_cache_key(config, image_weights_hash)}.onnx"
    )
    session = None
    if path.is_file():
        try:
            session, source = ort_session(path, threads=threads, spinning=spinning), str(path)
        except Exception:
            logger.warning("cached ONNX graph %s is unusable: exporting again", path, exc_info=True)
    if session is None:
        data = _export_onnx(encoder, crop)
        source = str(path) if _store(path, data) else "memory"
        session = ort_session(data, threads=threads, spinning=spinning)
        logger.info("exported the image encoder to ONNX (%s, %.1f MB)", source, len(data) / 1e6)
    return OnnxImageEncoder(session, getattr(encoder, "feature_dim", None), source)


def accelerate_image_encoder(
    encoder: nn.Module,
    backend: str,
    config: Mapping[str, Any],
    image_weights_hash: str,
    *,
    cache_dir: Path | None = None,
    threads: int | None = None,
    spinning: bool = False,
    check: bool = True,
) -> nn.Module:
    """``encoder`` behind ``backend``; falls back to eager (logged) when the backend fails."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown inference backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "eager":
        return encoder
    try:
        if backend == "channels-last":
            candidate: nn.Module = ChannelsLastImageEncoder(encoder)
        else:
            candidate = onnx_image_encoder(
                encoder, config, image_weights_hash, cache_dir=cache_dir, threads=threads, spinning=spinning
            )
        if check:
            cosine = _check_against_eager(encoder, candidate, int(config["preprocess"]["crop"]))
            if cosine < MIN_CHECK_COSINE:
                raise RuntimeError(f"{backend} vectors differ from eager (cosine {cosine:.5f})")
    except Exception:
        logger.exception("inference backend %s is unavailable: the image encoder runs eager", backend)
        return encoder
    return candidate.eval()


def use_backend(model: SearchModel, backend: str, **options: Any) -> SearchModel:
    """Run ``model``'s image backbone on ``backend`` (in place); vectors stay eager's to ~1e-6.

    Keeps the eager module as ``model.eager_image_encoder`` (the reference) and records
    the backend actually in use as ``model.inference_backend``.
    """
    eager = model.eager_image_encoder
    accelerated = accelerate_image_encoder(
        eager, backend, dict(model.config), weights_hash(model.spec.image), **options
    )
    model.eager_image_encoder = eager
    model.image_encoder = accelerated
    model.inference_backend = backend if accelerated is not eager else "eager"
    return model
