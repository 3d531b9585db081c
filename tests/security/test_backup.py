"""scripts/backup.sh and scripts/restore.sh on a real catalog: our own embedded
PostgreSQL 16 (so the scripts must find a pg_dump of that major version, not the
machine's older one), photos on disk, embeddings; restored into a new database and a new
folder, then compared row by row count, file by file, and searched."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

from .live import start_stack

COUNT_TABLES = """
import sys, json, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public' ORDER BY 1")]
    print(json.dumps({t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}))
"""
SEARCH = """
import django; django.setup()
from search.query import SearchQuery, search
print(",".join(r.product.sku for r in search(SearchQuery(text="rose gold ring", k=5)).results))
"""


def files_of(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def run(command: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_backup_then_restore_into_a_new_database_gives_the_same_catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backup")
    stack = start_stack(folder / "stack")
    try:
        stack.seed(6)
        source_env = stack.env()
        backup_dir = folder / "backup"
        result = run(["bash", "scripts/backup.sh", str(backup_dir)], source_env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "pginstall/bin/pg_dump" in result.stderr  # PostgreSQL 16's own pg_dump, not the machine's 15
        manifest = json.loads((backup_dir / "manifest.json").read_text())
        assert manifest["rows"]["catalog_product"] == 6
        assert manifest["rows"]["indexing_imageembedding"] == 6
        assert manifest["media_files"] == 6

        stack.postgres.psql("CREATE DATABASE restored;")
        restored_media = folder / "restored-media"
        target_env = stack.env(DATABASE_URL=stack.postgres.url("restored"), MEDIA_ROOT=str(restored_media))
        result = run(["bash", "scripts/restore.sh", str(backup_dir)], target_env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

        counts = [
            json.loads(run([sys.executable, "-c", COUNT_TABLES, env["DATABASE_URL"]], env).stdout)
            for env in (source_env, target_env)
        ]
        assert counts[0] == counts[1]
        assert counts[0]["catalog_product"] == 6
        assert files_of(stack.media_root) == files_of(restored_media)
        searched = [run([sys.executable, "-c", SEARCH], env).stdout.strip() for env in (source_env, target_env)]
        assert searched[0]
        assert searched[0] == searched[1]

        # Never over an existing catalog; never from a damaged backup.
        again = run(["bash", "scripts/restore.sh", str(backup_dir)], target_env)
        assert again.returncode != 0
        assert "already has" in again.stderr
        with open(backup_dir / "media.tar", "r+b") as handle:
            handle.seek(2000)
            handle.write(b"tampered")
        stack.postgres.psql("CREATE DATABASE restored_again;")
        damaged = run(
            ["bash", "scripts/restore.sh", str(backup_dir)],
            stack.env(DATABASE_URL=stack.postgres.url("restored_again"), MEDIA_ROOT=str(folder / "m2")),
        )
        assert damaged.returncode != 0
        assert "FAILED" in damaged.stdout + damaged.stderr
    finally:
        stack.close()
