#!/usr/bin/env bash
# What overload and stalled dependencies do to everyone else (issue 18):
#  1. 4,000 idle keep-alive connections held open while wrk loads cache
#     hits: the hits' req/s and p99 against the same load without them, the
#     idle connections still open at the end, and the gateway's RSS;
#  2. a Slitz answering in 2 s under 400 concurrent cold misses (distinct
#     keys): the p99 of cache hits beside them against hits alone, and how
#     the misses beyond the limit are answered: with the fixed limit
#     (max_concurrency 64: a 503 after the 1 s wait for a slot) and with
#     upstream.adaptive_concurrency (the limit shrinks: a 503 at once), plus
#     the limit's value;
#  3. cache hits with a rate-limited key and [redis], Redis frozen (SIGSTOP)
#     for 3 s in the middle of the run, against the same run unfrozen.
# Loopback only; every load is bounded by DURATION (default 8s).
#   bash bench/overload.sh        Record the output in RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk redis-server curl python3; do
  command -v $tool >/dev/null || { echo "install $tool: apt-get install -y ${tool/-server/}"; exit 1; }
done
duration=${DURATION:-8s}
sections=${SECTIONS:-123}   # e.g. SECTIONS=3 runs the frozen-Redis figure alone
out=$PWD/target/bench/overload
source bench/lib.sh "$out"
ulimit -n 16384 2>/dev/null || { echo "needs ulimit -n 16384 (4,000 connections, each end)"; exit 1; }

cargo build --release --locked --quiet --bin gateway
target/release/gateway sandbox-upstreams --listen 127.0.0.1:0 >"$out/upstreams.log" 2>&1 &
pids+=($!)
upstreams=http://$(wait_for "$out/upstreams.log" '"addr":"127.0.0.1:[0-9]*"' | cut -d'"' -f4)
sandbox() { curl -sf -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$upstreams/__sandbox/$2"; }
auth="Authorization: Bearer sandbox-key"

redis_port=$((20000 + RANDOM % 40000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" \
  >"$out/redis.log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
wait_for "$out/redis.log" 'Ready to accept connections' >/dev/null

# A gateway config: $1 is extra TOML (sections of its own).
config() {
  cat <<EOF
[server]
listen = "127.0.0.1:0"
# Idle connections are held for the whole of section 1.
keep_alive_seconds = 60

$(bench_key)

$(upstream_config "$upstreams")
stale_seconds = 0   # (in upstream_config's [cache]) misses are never served stale

[log]
format = "json"
filter = "warn,gateway::cli=info"   # the port line; no access log

$1
EOF
}

# Starts a gateway from config file $1: its base URL in $gw, its pid in $gateway.
start() {
  target/release/gateway --config "$1" >"$1.log" 2>&1 &
  gateway=$!
  pids+=($gateway)
  for _ in $(seq 1 200); do
    port=$(grep -o '"port":[0-9]*' "$1.log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
    sleep 0.05
  done
  gw="http://127.0.0.1:$port"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# One wrk run: prints "req/s p50_ms p99_ms non2xx".
measure() {
  local threads=$1 conns=$2 url=$3; shift 3
  wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { printf "%d %.3f %.3f %d\n", rps, p50, p99, bad }'
}
row() { printf '%-58s %9s %9s %9s %8s\n' "$@"; }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

if [[ $sections == *1* ]]; then
echo "== 1. 4,000 idle keep-alive connections beside cache-hit load"
config "" >"$out/idle.toml"
start "$out/idle.toml"
curl -sf -o /dev/null -H "$auth" "$gw/v1/services"
rss_before=$(rss_mb $gateway)
row "" "req/s" p50_ms p99_ms non2xx
row "hits alone (wrk -t2 -c64)" $(measure 2 64 "$gw/v1/services" -H "$auth")
# Each idle client sends one request, reads its answer, then keeps the
# connection open and says nothing until told to check it.
cat >"$out/idle.py" <<'PY'
import socket, sys, time
host, port, count, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
request = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"
conns = []
for _ in range(count):
    s = socket.create_connection((host, port))
    s.sendall(request)
    conns.append(s)
for s in conns:
    s.settimeout(10)
    assert s.recv(4096).startswith(b"HTTP/1.1 200"), "an idle client's first answer"
print("open", len(conns), flush=True)
time.sleep(hold)
alive = 0
for s in conns:
    try:
        s.sendall(request)
        if s.recv(4096).startswith(b"HTTP/1.1 200"):
            alive += 1
    except OSError:
        pass
print("still served after holding", alive, flush=True)
PY
hold=$(( ${duration%s} + 4 ))
python3 "$out/idle.py" 127.0.0.1 "${gw##*:}" 4000 "$hold" >"$out/idle.out" &
idle=$!
wait_for "$out/idle.out" 'open 4000' >/dev/null
rss_idle=$(rss_mb $gateway)
row "hits beside 4,000 idle connections" $(measure 2 64 "$gw/v1/services" -H "$auth")
wait $idle
echo "$(tail -1 "$out/idle.out") of 4000"
echo "gateway RSS: ${rss_before} MB before, ${rss_idle} MB holding 4,000 idle connections, peak $(hwm_mb $gateway) MB"
stop $gateway
echo
fi

if [[ $sections == *2* ]]; then
echo "== 2. Slitz answering in 2 s under 400 concurrent cold misses"
# 20 probe misses, one at a time, during the load: "status seconds" each.
probe() {
  for i in $(seq 1 20); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "$auth" \
      "$1/v1/billing/invoices?per_page=3&page=$((900000 + RANDOM % 90000 + i))"
    sleep 0.2
  done
}
for mode in fixed adaptive; do
  if [ $mode = adaptive ]; then extra=$'[upstream.slitz]\nadaptive_concurrency = true'; else extra=""; fi
  config "$extra" >"$out/$mode.toml"
  start "$out/$mode.toml"
  curl -sf -o /dev/null -H "$auth" "$gw/v1/services"
  sandbox DELETE faults >/dev/null
  alone=$(measure 1 16 "$gw/v1/services" -H "$auth")
  sandbox POST faults '{"path":"/slitz/api/invoice","method":"GET","fault":{"kind":"delay","ms":2000}}' >/dev/null
  measure 2 400 "$gw/" -s bench/misses.lua -H "$auth" >"$out/$mode-misses.txt" &
  load=$!
  sleep 1
  probe "$gw" >"$out/$mode-probes.txt" &
  probes=$!
  beside=$(measure 1 16 "$gw/v1/services" -H "$auth")
  limit=$(curl -sf "$gw/metrics" | awk '/^gateway_upstream_concurrency_limit\{upstream="slitz"\}/ { print $2 }')
  wait $probes
  wait $load
  sandbox DELETE faults >/dev/null
  echo "-- $mode limit ($( [ $mode = fixed ] && echo 'max_concurrency 64, a slot waited for up to 1 s' || echo 'adaptive_concurrency = true under max_concurrency 64'))"
  row "" "req/s" p50_ms p99_ms non2xx
  row "hits alone (1 thread, 16 connections)" $alone
  row "hits beside 400 connections of 2 s misses" $beside
  row "the misses (wrk -t2 -c400)" $(cat "$out/$mode-misses.txt")
  echo "slitz concurrency limit during the load: $limit"
  awk '{ n[$1]++; t[$1] += $2; if ($2 > max[$1]) max[$1] = $2 }
    END { for (s in n) printf "probe misses answered %s: %d, mean %.3f s, slowest %.3f s\n", s, n[s], t[s] / n[s], max[s] }' \
    "$out/$mode-probes.txt" | sort
  stop $gateway
done
echo
fi

if [[ $sections == *3* ]]; then
echo "== 3. cache hits with [redis] and a rate-limited key, Redis frozen for 3 s mid-run"
config "[redis]
url = \"redis://127.0.0.1:$redis_port/0\"" >"$out/redis.toml"
start "$out/redis.toml"
wait_for_invalidations "$gw"
curl -sf -o /dev/null -H "$auth" "$gw/v1/services"
row "" "req/s" p50_ms p99_ms non2xx
row "hits, Redis answering (wrk -t2 -c64)" $(measure 2 64 "$gw/v1/services" -H "$auth")
( sleep 2; kill -STOP $redis_pid; sleep 3; kill -CONT $redis_pid ) &
freezer=$!
row "hits, Redis frozen from 2 s to 5 s" $(measure 2 64 "$gw/v1/services" -H "$auth")
wait $freezer
curl -sf "$gw/metrics" | grep -E '^gateway_redis_(errors|skipped)_total|^gateway_redis_up' || true
stop $gateway
echo
fi
echo "== ($(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) cores shared by wrk and all servers)"
