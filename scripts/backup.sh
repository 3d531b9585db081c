#!/usr/bin/env bash
# Back up the catalog: the database (pg_dump, custom format) and the product photos
# (a tar of MEDIA_ROOT), with a manifest of row counts and checksums.
#
#   DATABASE_URL=postgres://... MEDIA_ROOT=/srv/media scripts/backup.sh [BACKUP_DIR]
#
# Safe while the shop runs: pg_dump reads one consistent snapshot; photos are written
# once under content-hash names and never changed, so a photo added during the tar is
# at worst present without its row (harmless) - take the database dump first. A photo
# deleted during the tar (its last row gone after the dump) is skipped, not an error:
# restoring it brings back a file no row needs, which `manage.py media_gc` removes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pg_tools.sh
: "${DATABASE_URL:?set DATABASE_URL}"
MEDIA_ROOT=${MEDIA_ROOT:-media}
DEST=${1:-backups/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$DEST"
pick_pg_bin "$DATABASE_URL"
echo "backup: database with $PG_BIN/pg_dump -> $DEST/database.dump" >&2
"$PG_BIN/pg_dump" --format=custom --no-owner --no-privileges --file "$DEST/database.dump" "$DATABASE_URL"
echo "backup: photos $MEDIA_ROOT -> $DEST/media.tar" >&2
mkdir -p "$MEDIA_ROOT"
tar -C "$MEDIA_ROOT" --ignore-failed-read --warning=no-file-removed --warning=no-file-changed -cf "$DEST/media.tar" .
"$PY" - "$DATABASE_URL" "$MEDIA_ROOT" "$DEST/manifest.json" <<'PYEOF'
import json, pathlib, sys, datetime, psycopg
url, media, out = sys.argv[1:]
tables = ["catalog_category", "catalog_product", "catalog_productimage", "indexing_modelversion",
          "indexing_imageembedding", "indexing_productembedding"]
counts = {}
with psycopg.connect(url) as conn:
    for table in tables:
        try:
            counts[table] = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        except psycopg.errors.UndefinedTable:
            conn.rollback()
files = sum(1 for p in pathlib.Path(media).rglob("*") if p.is_file())
manifest = {"created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "rows": counts, "media_files": files}
pathlib.Path(out).write_text(json.dumps(manifest, indent=2) + "\n")
print(json.dumps(manifest))
PYEOF
(cd "$DEST" && sha256sum database.dump media.tar manifest.json > SHA256SUMS)
echo "backup: done: $DEST" >&2
