"""What the catalog tells the rest of the shop. The catalog imports no other app: apps
that care (indexing) connect to these at start-up.

- `reembedding_requested(product_ids, image_ids)`: rows were flagged for re-embedding in
  bulk (an admin action, `reindex`), bypassing `post_save`.
- `bulk_change()`: a context manager around a bulk operation (an import, the demo
  catalog). Listeners register a context of their own with `register_bulk_context`, so
  indexing can send one task per chunk of rows instead of one per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

from django.dispatch import Signal

reembedding_requested = Signal()

_bulk_contexts: list[Callable[[], AbstractContextManager[object]]] = []


def register_bulk_context(factory: Callable[[], AbstractContextManager[object]]) -> None:
    """Enter `factory()` around every `bulk_change()` (registered once per process)."""
    if factory not in _bulk_contexts:
        _bulk_contexts.append(factory)


@contextmanager
def bulk_change() -> Iterator[None]:
    with ExitStack() as stack:
        for factory in _bulk_contexts:
            stack.enter_context(factory())
        yield
