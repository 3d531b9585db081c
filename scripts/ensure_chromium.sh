#!/usr/bin/env bash
# Install Debian's chromium + chromium-driver (for headless browser tests) if missing,
# then check that headless chromium actually runs. Idempotent; needs root to install.
set -euo pipefail

log() { echo "[ensure_chromium] $*" >&2; }

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  log "chromium and chromedriver already installed, nothing to do"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { log "must run as root"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
log "installing chromium chromium-driver"
if ! apt_install; then
  log "install failed with current package lists; running apt-get update and retrying"
  apt-get update -qq
  apt_install
fi

# (the Debian /usr/bin/chromium wrapper may print a harmless "[: unexpected operator" from its
# /etc/chromium.d/dev-shm check when findmnt lists /dev/shm twice; hence 2>/dev/null)
log "$(chromium --version 2>/dev/null) / $(chromedriver --version | cut -d' ' -f1-2)"
dom=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
  --disable-background-networking --disable-component-update --no-first-run \
  --dump-dom 'data:text/html,<title>ok</title><p id=probe>chromium-ok</p>' 2>/dev/null)
if [[ "$dom" == *chromium-ok* ]]; then
  log "OK: headless chromium renders pages"
else
  log "headless chromium check FAILED; got: ${dom:-<empty>}"
  exit 1
fi
