"""The life of a stored photo file: stored once per content (the name is the SHA-256 of the
bytes), shared by every row of that content, deleted after commit when the last row that
names it goes. `manage.py media_gc` sweeps what earlier releases (or raw SQL) left behind.

Reusing a file and deleting one take the same per-content lock (catalog.db), so a delete
never removes a file that a transaction still being committed has just started to use.
"""

from __future__ import annotations

import hashlib
import logging
import re

from django.apps import apps
from django.core.files.storage import Storage
from django.db import transaction

from .db import lock_photo_content

logger = logging.getLogger(__name__)

# products/ab/<sha256>.jpg, or with the 7-character suffix Django added to duplicates before
# photos were stored once per content.
PHOTO_NAME = re.compile(r"products/[0-9a-f]{2}/(?P<hash>[0-9a-f]{64})(?:_[A-Za-z0-9]{7})?\.(?:jpg|png|webp|gif|heic)")
READ_CHUNK = 1 << 20


def content_hash_of_name(name: str) -> str | None:
    match = PHOTO_NAME.fullmatch(name or "")
    return match["hash"] if match else None


def stored_file_hash(storage: Storage, name: str) -> str | None:
    """SHA-256 of a stored file, or None when it is not there."""
    digest = hashlib.sha256()
    try:
        with storage.open(name, "rb") as handle:
            for chunk in iter(lambda: handle.read(READ_CHUNK), b""):
                digest.update(chunk)
    except (FileNotFoundError, OSError):
        return None
    return digest.hexdigest()


def is_referenced(name: str) -> bool:
    ProductImage = apps.get_model("catalog", "ProductImage")  # by name: catalog.models imports this module

    content_hash = content_hash_of_name(name)
    rows = ProductImage.objects.filter(image=name)
    if content_hash:  # the content_hash index finds the rows; the name filter is exact
        rows = rows.filter(content_hash=content_hash)
    return rows.exists()


def delete_file_if_unreferenced(storage: Storage, name: str, content_hash: str = "") -> bool:
    """Delete a stored photo file unless a committed row still names it. True when deleted."""
    if not name:
        return False
    with transaction.atomic():
        lock_photo_content(content_hash or content_hash_of_name(name) or name)
        if is_referenced(name):
            return False
        try:
            storage.delete(name)
        except FileNotFoundError:
            return False
    logger.info("deleted photo file %s: no row references it", name)
    return True


def delete_file_after_commit(storage: Storage, name: str, content_hash: str = "") -> None:
    """After the transaction that dropped a row (or replaced its file) commits; nothing on
    rollback, so a failed delete never loses a photo."""
    if name:
        transaction.on_commit(lambda: delete_file_if_unreferenced(storage, name, content_hash), robust=True)


def photo_deleted(sender, instance, **kwargs) -> None:
    """post_delete of a ProductImage (also for rows that went with their product)."""
    delete_file_after_commit(instance.image.storage, instance.image.name, instance.content_hash)
