#!/usr/bin/env bash
# Installs what the test-suite talks to besides Python: the oidc-provider and axe-core npm
# packages (pinned in tests/package.json), Debian's chromium for the browser tests and wrk
# for the benchmark. System packages need root (CI and the dev machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d tests/node_modules/oidc-provider ] || [ tests/package-lock.json -nt tests/node_modules ]; then
  (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install-test-deps: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
  fi
fi
