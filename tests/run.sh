#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine it installs what the
# tests need (Debian's redis-server and nginx: the shared-state and
# load-balancer tests start real ones; promtool, from the prometheus package,
# checks the metrics and the alert rules; Node.js and npm `oidc-provider`, the
# real OpenID Provider the identity tests start; Chromium, the browser one of
# them logs in with; PostgreSQL, which the registry's tests start clusters
# of), then runs the whole suite. `.ci/run` calls this same script.
# Extra arguments go to `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v promtool >/dev/null || missing+=(prometheus)
command -v node >/dev/null || missing+=(nodejs npm)
# The browser login test drives Debian's Chromium.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The registry's tests run every scenario on a real PostgreSQL too.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "--> installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked
# The identity tests' OpenID Provider and browser driver, pinned by its lock file.
{ [ -d tests/identity/node_modules/oidc-provider ] && [ -d tests/identity/node_modules/playwright-core ]; } ||
  (cd tests/identity && npm ci --no-audit --no-fund --loglevel=error)
# --workspace: the simulated upstreams' own tests run too.
exec cargo nextest run --workspace --locked "$@"
