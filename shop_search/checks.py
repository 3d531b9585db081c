"""Start-up checks for the model weights: `manage.py check` (and so `migrate`,
`runserver`, the launcher) fails with the file's name when a configured weights file is
missing or is not a readable checkpoint, instead of the first search failing later."""

from __future__ import annotations

import zipfile
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register

# torch.save's legacy (pre-1.6) format: a pickle that starts with this magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


def _checkpoint_problem(path: Path) -> str | None:
    """A PyTorch checkpoint (torch.save) is a zip archive whose CRCs can be tested without
    importing torch, or a legacy pickle with a known magic number."""
    if path.is_dir():
        return None  # a save_pretrained folder: its files are read by the encoders
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        with open(path, "rb") as handle:
            if handle.read(len(_LEGACY_TORCH_MAGIC)) == _LEGACY_TORCH_MAGIC:
                return None
        try:
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return f"{path} is not a readable PyTorch checkpoint ({exc})"
        if broken is not None:
            return f"{path} is corrupt (bad CRC in {broken})"
    elif path.stat().st_size == 0:
        return f"{path} is empty"
    return None


@register()
def check_search_model_weights(app_configs, **kwargs) -> list[Error]:
    from ml.errors import ModelLoadError
    from ml.registry import model_spec

    weights = {
        "image_weights": settings.SEARCH_IMAGE_WEIGHTS,
        "text_weights": settings.SEARCH_TEXT_WEIGHTS,
        "fusion_weights": settings.SEARCH_FUSION_WEIGHTS,
    }
    try:
        spec = model_spec(settings.SEARCH_MODEL, **{key: value for key, value in weights.items() if value})
    except ModelLoadError as exc:
        return [Error(str(exc), hint="Fix SEARCH_*_WEIGHTS or install the weights.", id="shop_search.E001")]
    errors = []
    for part in ("image", "text", "fusion"):
        resolved = getattr(spec, part)
        if resolved.path is None:
            continue
        problem = _checkpoint_problem(Path(resolved.path))
        if problem:
            errors.append(
                Error(
                    f"{part} weights: {problem}",
                    hint=f"Replace the file or unset SEARCH_{part.upper()}_WEIGHTS.",
                    id="shop_search.E002",
                )
            )
    return errors
