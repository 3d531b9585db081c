"""pgvector capabilities and the per-version partial HNSW indexes.

Runs on pgvector 0.8 (machine PostgreSQL: iterative index scans, halfvec) and on the
0.6.2 bundled with the embedded server (neither); callers ask `capabilities()`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from .models import ImageEmbedding, ProductEmbedding

# Raw SQL names the tables through this one map (the per-version index names follow them).
TABLES = {"image": ImageEmbedding._meta.db_table, "product": ProductEmbedding._meta.db_table}


@dataclass(frozen=True)
class Capabilities:
    version: tuple[int, ...]

    @property
    def iterative_scan(self) -> bool:
        return self.version >= (0, 8, 0)

    @property
    def halfvec(self) -> bool:
        return self.version >= (0, 7, 0)


@functools.cache
def _capabilities_for(alias_settings_key: str) -> Capabilities:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("The pgvector extension is not installed in this database: run migrations.")
    return Capabilities(tuple(int(part) for part in row[0].split(".")[:3]))


def capabilities() -> Capabilities:
    db = connection.settings_dict
    return _capabilities_for(f"{db.get('HOST')}:{db.get('PORT')}/{db.get('NAME')}")


def index_name(kind: str, version_id: int) -> str:
    return f"{TABLES[kind]}_hnsw_v{int(version_id)}"


def ensure_hnsw_indexes(version_id: int) -> None:
    """Create the partial HNSW cosine indexes of one model version (idempotent)."""
    version_id = int(version_id)
    with connection.cursor() as cursor:
        if connection.in_atomic_block:
            # CREATE INDEX refuses to run while deferred FK checks of rows this transaction
            # wrote are pending: check them now, then defer again as before.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for kind, table in TABLES.items():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {index_name(kind, version_id)} ON {table} "
                f"USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {int(settings.HNSW_M)}, ef_construction = {int(settings.HNSW_EF_CONSTRUCTION)}) "
                f"WHERE model_version_id = {version_id}"
            )


def drop_hnsw_indexes(version_id: int) -> None:
    """Drop a version's partial indexes; CONCURRENTLY when not in a transaction, so a
    prune never blocks searches on the live version."""
    concurrently = "" if connection.in_atomic_block else "CONCURRENTLY "
    with connection.cursor() as cursor:
        for kind in TABLES:
            cursor.execute(f"DROP INDEX {concurrently}IF EXISTS {index_name(kind, int(version_id))}")


def hnsw_indexes(version_id: int) -> list[str]:
    """Names of the partial HNSW indexes that exist for a version."""
    names = [index_name(kind, int(version_id)) for kind in TABLES]
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s)", [names])
        return sorted(row[0] for row in cursor.fetchall())
