# shellcheck shell=bash
# Sourced by backup.sh and restore.sh: pick PostgreSQL client tools whose major version is
# at least the server's (pg_dump refuses an older client), from $PG_BIN, the embedded
# server's own binaries (pgserver ships PostgreSQL 16), /usr/lib/postgresql/*/bin, PATH.
PY=${PYTHON:-.venv/bin/python}

pg_major() { "$1" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/'; }

server_major() {
  "$PY" - "$1" <<'PYEOF'
import sys, psycopg
with psycopg.connect(sys.argv[1], connect_timeout=10) as conn:
    print(conn.info.server_version // 10000)
PYEOF
}

pick_pg_bin() {  # pick_pg_bin DATABASE_URL -> sets PG_BIN
  local want candidates dir
  want=$(server_major "$1")
  candidates=()
  [ -n "${PG_BIN:-}" ] && candidates+=("$PG_BIN")
  dir=$("$PY" -c 'import pgserver._commands as c; print(c.POSTGRES_BIN_PATH)' 2>/dev/null || true)
  [ -n "$dir" ] && candidates+=("$dir")
  while IFS= read -r dir; do candidates+=("$dir"); done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
  command -v pg_dump >/dev/null && candidates+=("$(dirname "$(command -v pg_dump)")")
  for dir in "${candidates[@]}"; do
    if [ -x "$dir/pg_dump" ] && [ "$(pg_major "$dir/pg_dump")" -ge "$want" ]; then
      PG_BIN=$dir
      return 0
    fi
  done
  echo "no pg_dump of major version >= $want found (set PG_BIN)" >&2
  return 1
}
