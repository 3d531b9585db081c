#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into an EMPTY database and media folder.
#
#   DATABASE_URL=postgres://.../new_db MEDIA_ROOT=/srv/media scripts/restore.sh BACKUP_DIR
#
# The database must exist and hold no tables (createdb it first); the server needs the
# pgvector extension available (the dump creates it). Refuses to overwrite anything.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg_tools.sh
: "${DATABASE_URL:?set DATABASE_URL}"
SRC=${1:?usage: scripts/restore.sh BACKUP_DIR}
MEDIA_ROOT=${MEDIA_ROOT:-media}
(cd "$SRC" && sha256sum --check --quiet SHA256SUMS)
tables=$("$PY" - "$DATABASE_URL" <<'PYEOF'
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    print(conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0])
PYEOF
)
if [ "$tables" != "0" ]; then
  echo "restore: the target database already has $tables tables: restore into a new, empty database" >&2
  exit 1
fi
if [ -d "$MEDIA_ROOT" ] && [ -n "$(ls -A "$MEDIA_ROOT")" ]; then
  echo "restore: $MEDIA_ROOT is not empty: restore into a new, empty folder" >&2
  exit 1
fi
pick_pg_bin "$DATABASE_URL"
echo "restore: database with $PG_BIN/pg_restore" >&2
"$PG_BIN/pg_restore" --no-owner --no-privileges --exit-on-error --dbname "$DATABASE_URL" "$SRC/database.dump"
echo "restore: photos -> $MEDIA_ROOT" >&2
mkdir -p "$MEDIA_ROOT"
tar -C "$MEDIA_ROOT" -xf "$SRC/media.tar" --no-same-owner
"$PY" - "$DATABASE_URL" "$MEDIA_ROOT" "$SRC/manifest.json" <<'PYEOF'
import json, pathlib, sys, psycopg
url, media, manifest_path = sys.argv[1:]
manifest = json.loads(pathlib.Path(manifest_path).read_text())
with psycopg.connect(url) as conn:
    rows = {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in manifest["rows"]}
files = sum(1 for p in pathlib.Path(media).rglob("*") if p.is_file())
problems = [f"{t}: {rows[t]} rows, backup had {n}" for t, n in manifest["rows"].items() if rows[t] != n]
if files != manifest["media_files"]:
    problems.append(f"media: {files} files, backup had {manifest['media_files']}")
print(json.dumps({"rows": rows, "media_files": files, "problems": problems}))
sys.exit(1 if problems else 0)
PYEOF
echo "restore: done; run 'manage.py migrate' if this code is newer than the backup" >&2
