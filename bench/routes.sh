#!/usr/bin/env bash
# Throughput, latency and memory of the gateway against its own sandbox, on
# loopback, with wrk (Debian's). Run by hand; record the figures in RESULTS.md.
#   bash bench/routes.sh         (DURATION=10s CONNECTIONS=16 by default)
# Bounded: each scenario runs for DURATION against 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "install wrk: apt-get install -y wrk"; exit 1; }
duration=${DURATION:-10s}
connections=${CONNECTIONS:-16}
out=target/bench
mkdir -p "$out"

cargo build --release --locked --quiet --bin gateway
target/release/gateway --listen 127.0.0.1:0 >"$out/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(grep -o '"port":[0-9]*' "$out/gateway.log" | head -1 | cut -d: -f2 || true)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$out/gateway.log"; exit 1; }
base="http://127.0.0.1:$port"
auth="Authorization: Bearer sandbox-key"

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$gateway/status"; }
echo "gateway pid $gateway on $base; RSS at start: $(rss)"
echo "wrk: 1 thread, $connections connections, $duration per scenario; $(nproc) cores shared by wrk, gateway and simulators"
echo

scenario() {
  local name=$1 path=$2
  # Warm the cache so the scenario measures what it names.
  curl -s -o /dev/null -H "$auth" "$base$path"
  echo "== $name ($path)"
  wrk -t1 -c"$connections" -d"$duration" --latency -H "$auth" "$base$path" \
    | grep -E "Requests/sec|Latency  |50%|99%|Non-2xx|Socket errors"
  echo "   RSS after: $(rss)"
  echo
}

scenario "liveness, no key, no upstream" /healthz
scenario "account, cache hit" /v1/account
scenario "invoice list page, cache hit" "/v1/billing/invoices?per_page=25"
scenario "service with credentials, cache hit" /v1/services/33301
scenario "overview: six cached sources, summarized per request" /v1/overview
scenario "bad id: 400 before any upstream" /v1/billing/invoices/abc
