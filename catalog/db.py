"""Database helpers for work that runs at the same time as other work on the same rows:
retrying a transaction PostgreSQL aborted to break a deadlock, and a per-photo lock that
orders "reuse a stored file" against "delete a file nobody references"."""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATEs that mean "nothing was wrong with the work; run it again".
RETRYABLE_SQLSTATES = {
    "40P01": "deadlock detected",
    "40001": "serialization failure",
}
TRANSACTION_ATTEMPTS = 4


def retryable_reason(exc: BaseException) -> str | None:
    """What makes `exc` worth a retry (deadlock, serialization failure), or None."""
    for cause in (exc, exc.__cause__, exc.__context__):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if code in RETRYABLE_SQLSTATES:
            return RETRYABLE_SQLSTATES[code]
    return None


def run_in_transaction(work: Callable[[], T], *, attempts: int = TRANSACTION_ATTEMPTS, what: str = "") -> T:
    """Run `work` in its own transaction; when PostgreSQL aborts it to break a deadlock (or
    a serialization conflict), run it again after a short random pause, up to `attempts`
    times. Inside an outer transaction there is nothing to retry: it just runs."""
    if connection.in_atomic_block:
        return work()
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return work()
        except DatabaseError as exc:
            reason = retryable_reason(exc)
            if reason is None or attempt == attempts:
                raise
            pause = random.uniform(0.02, 0.1) * attempt
            logger.warning("%s: %s, retrying (%d/%d) in %.2fs", what or "transaction", reason, attempt, attempts, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def lock_photo_content(content_hash: str) -> None:
    """Hold, until the transaction ends, the lock of one photo content (by its SHA-256):
    whoever reuses a stored file of that content and whoever deletes it take turns."""
    if not content_hash:
        return
    digest = content_hash if all(c in "0123456789abcdef" for c in content_hash[:15]) else sha256(content_hash)
    key = int(digest[:15], 16)  # 60 bits: fits PostgreSQL's bigint; a collision only serialises
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
