#!/usr/bin/env bash
# `make bench`: every benchmark in benchmarks/ (python -m benchmarks.run), one table,
# benchmarks/results.json. Arguments (or BENCH_ARGS) pass through: --quick, --docs, ...
# Needs the machine's PostgreSQL with pgvector on 127.0.0.1:5432 and Redis on 6379, as
# `make test` does; it works in its own database (shop_search_perf) and Redis db 5.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
port_open() { $PY -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5)" "$1" 2>/dev/null; }
port_open 5432 || { echo "bench.sh: no PostgreSQL on 127.0.0.1:5432" >&2; exit 1; }
port_open 6379 || { echo "bench.sh: no Redis on 127.0.0.1:6379" >&2; exit 1; }
bash scripts/ensure_pgvector.sh
# shellcheck disable=SC2086
exec $PY -m benchmarks.run ${BENCH_ARGS:-} "$@"
