"""Is each part up: the database, the broker, a worker. For /healthz and the commands
that wait on the worker (`reindex`, `model_upgrade`)."""

from __future__ import annotations

from celery import current_app as celery_app
from django.db import connection


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {str(exc).strip()[:200]}"


def check_broker() -> str:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}: {str(exc).strip()[:200]}"


def check_worker() -> str:
    try:
        # limit=1: answer as soon as one worker replies instead of always waiting the timeout.
        replies = celery_app.control.ping(timeout=0.5, limit=1)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {str(exc).strip()[:200]}"
    return "ok" if replies else "error: no worker answered"
