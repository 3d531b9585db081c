#!/usr/bin/env bash
# Make `CREATE EXTENSION vector` (pgvector >= 0.8) possible on the local PostgreSQL server.
# Debian 12 ships no pgvector, so build Debian trixie's pgvector *source* package against
# the installed server. Idempotent: exits immediately if a recent enough pgvector is available.
# Needs root (apt-get, make install). No server restart needed.
set -euo pipefail

log() { echo "[ensure_pgvector] $*" >&2; }
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB="${PGDATABASE:-test}"
MIN_VERSION=0.8
SRC_SUITE=trixie   # Debian release whose pgvector source (0.8.x) we build

available=$(psql -d postgres -Atc "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
if [[ -n "$available" ]] && dpkg --compare-versions "$available" ge "$MIN_VERSION"; then
  log "pgvector $available already available on $PGHOST:$PGPORT, nothing to do"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }

major=$(( $(psql -d postgres -Atc 'SHOW server_version_num') / 10000 ))
pg_config="/usr/lib/postgresql/$major/bin/pg_config"
server_pkg_version=$(dpkg-query -W -f='${Version}' "postgresql-$major")
log "server is PostgreSQL $major (package postgresql-$major $server_pkg_version); pgvector available: ${available:-none}"

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -qq
log "installing postgresql-server-dev-$major=$server_pkg_version build-essential dpkg-dev"
apt-get install -y -qq --no-install-recommends \
  "postgresql-server-dev-$major=$server_pkg_version" build-essential dpkg-dev >/dev/null

# The mirror this machine already uses for its main Debian suite (e.g. http://deb.debian.org/debian).
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
mirror=$(apt-cache policy | sed -nE "s#^ *[0-9]+ (\S+) $codename/main .*#\1#p" | head -n1)
[[ -n "$mirror" ]] || { log "cannot find the Debian mirror for $codename in apt sources"; exit 1; }

# Temporary deb-src entry for trixie, in a private apt state dir: the system's sources
# and package lists are never touched, so no trixie binaries can leak into upgrades.
work=$(mktemp -d /tmp/ensure_pgvector.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources.d" "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
cat >"$work/sources.d/trixie-src.sources" <<EOF
Types: deb-src
URIs: $mirror
Suites: $SRC_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt_tmp=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources.d"
         -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
chmod 755 "$work" && chown -R _apt "$work/lists" "$work/src"   # let apt's sandbox user write there
log "fetching $SRC_SUITE source package pgvector from $mirror"
apt-get "${apt_tmp[@]}" update -qq
(cd "$work/src" && apt-get "${apt_tmp[@]}" source -qq pgvector >/dev/null)
srcdir=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
log "building $(basename "$srcdir") against $pg_config"

# OPTFLAGS="" = portable build (no -march=native), as Debian does; with_llvm=no skips JIT bitcode.
make -s -C "$srcdir" with_llvm=no OPTFLAGS="" PG_CONFIG="$pg_config" >/dev/null
make -s -C "$srcdir" with_llvm=no OPTFLAGS="" PG_CONFIG="$pg_config" install >/dev/null

# shellcheck disable=SC2016  # $$vector$$ is SQL dollar quoting, not a shell expansion
version=$(psql -d "$DB" -Atqc 'SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector; SELECT extversion FROM pg_extension WHERE extname = $$vector$$')
log "OK: pgvector $version installed and created in database '$DB'"
