"""Encoder builders registered by kind, so a new backbone family is one decorated function.

A model config names its backbone with ``image.kind`` / ``text.kind``; the builder
registered under that kind (or one of its aliases, e.g. the older spelling
``efficientnet-lite``) makes the module. Kinds and aliases are part of configs stored in
shops' databases through the version string, so an alias is never renamed or removed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ml.errors import ModelLoadError

__all__ = ["KindRegistry"]

Builder = TypeVar("Builder", bound=Callable[..., object])


class KindRegistry(Generic[Builder]):
    """kind name -> builder, with aliases; unknown kinds raise ModelLoadError."""

    def __init__(self, role: str) -> None:
        self.role = role  # "image encoder", "text encoder": for error messages
        self._builders: dict[str, Builder] = {}
        self._aliases: dict[str, str] = {}

    def register(self, kind: str, *, aliases: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
        """Decorator: ``@IMAGE_ENCODERS.register("resnet")`` over a builder function."""

        def decorate(builder: Builder) -> Builder:
            for name in (kind, *aliases):
                if name in self._builders or name in self._aliases:
                    raise ValueError(f"{self.role} kind {name!r} is registered twice")
            self._builders[kind] = builder
            self._aliases.update(dict.fromkeys(aliases, kind))
            return builder

        return decorate

    def kinds(self) -> list[str]:
        """The registered kinds (canonical names, without aliases)."""
        return sorted(self._builders)

    def canonical(self, kind: str) -> str:
        """The registered name of ``kind`` (aliases resolved); ModelLoadError when unknown."""
        name = self._aliases.get(kind, kind)
        if name not in self._builders:
            raise ModelLoadError(f"unknown {self.role} kind {kind!r} (known: {', '.join(self.kinds())})")
        return name

    def builder(self, kind: str) -> Builder:
        return self._builders[self.canonical(kind)]
