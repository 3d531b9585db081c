#!/usr/bin/env bash
# Picks the real services the suite runs on, then runs it twice:
#   1. everything, on DATABASE_URL, or the machine's PostgreSQL (pgvector 0.8 built if
#      missing), or the embedded one;
#   2. the `pgvector_compat` tests again on the embedded PostgreSQL 16 + pgvector 0.6,
#      so search behaviour is proven on both pgvector versions.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
log() { echo "test.sh: $*"; }
port_open() { $PY -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5)" "$1" 2>/dev/null; }

if [ -z "${DATABASE_URL:-}" ]; then
  if port_open 5432; then
    bash scripts/ensure_pgvector.sh
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
  else
    DATABASE_URL="$($PY -m shop_search.embedded postgres)"
    export DATABASE_URL
  fi
fi
if [ -z "${REDIS_URL:-}" ]; then
  if port_open 6379; then
    export REDIS_URL="redis://127.0.0.1:6379/15"
  else
    REDIS_URL="$($PY -m shop_search.embedded redis | sed 's#/0$#/15#')"
    export REDIS_URL
  fi
fi
if [ "$(id -u)" = 0 ] || command -v chromium >/dev/null; then
  bash scripts/ensure_chromium.sh || log "chromium unavailable: browser tests will be skipped"
fi
log "database $DATABASE_URL, redis $REDIS_URL"
$PY -m pytest "$@"

if [ -z "${SKIP_COMPAT:-}" ]; then
  EMBEDDED_URL="$($PY -m shop_search.embedded postgres)"
  if [ "$EMBEDDED_URL" != "$DATABASE_URL" ]; then
    log "pgvector compatibility run on the embedded PostgreSQL ($EMBEDDED_URL)"
    DATABASE_URL="$EMBEDDED_URL" $PY -m pytest -m pgvector_compat -p no:cacheprovider --create-db
  fi
fi
