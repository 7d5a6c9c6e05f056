#!/usr/bin/env bash
# L1 cache hits with `[redis]` configured against the same hits without it
# (issue 10: within 5%). Two gateways from one config file, identical but for
# the `[redis]` section, against one set of simulated upstreams and a
# redis-server of its own, all on 127.0.0.1. wrk alternates between them
# ROUNDS times per scenario so drift on a shared machine hits both alike;
# the medians go in RESULTS.md.
#   bash bench/redis.sh          (DURATION=10s CONNECTIONS=16 ROUNDS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk redis-server; do
  command -v $tool >/dev/null || { echo "install $tool: apt-get install -y ${tool/-server/}"; exit 1; }
done
duration=${DURATION:-10s}
connections=${CONNECTIONS:-16}
rounds=${ROUNDS:-4}
out=target/bench/redis
source bench/lib.sh "$out"

cargo build --release --locked --quiet --bin gateway
target/release/gateway sandbox-upstreams --listen 127.0.0.1:0 >"$out/upstreams.log" 2>&1 &
pids+=($!)
upstreams=$(wait_for "$out/upstreams.log" '"addr":"127.0.0.1:[0-9]*"' | cut -d'"' -f4)

redis_port=$((20000 + RANDOM % 40000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" \
  >"$out/redis.log" 2>&1 &
pids+=($!)
wait_for "$out/redis.log" 'Ready to accept connections' >/dev/null

# The key is `sandbox-key`.
config() {
  cat <<EOF
[server]
listen = "127.0.0.1:0"

[[auth.api_keys]]
name = "bench"
sha256 = "$(printf %s sandbox-key | sha256sum | cut -d' ' -f1)"
scopes = ["read", "write", "secrets"]

$(upstream_config "http://$upstreams")

[log]
format = "json"
EOF
}
config >"$out/alone.toml"
{ config; printf '\n[redis]\nurl = "redis://127.0.0.1:%s/0"\n' "$redis_port"; } >"$out/redis.toml"

declare -A base
for mode in alone redis; do
  target/release/gateway --config "$out/$mode.toml" >"$out/$mode.log" 2>&1 &
  pids+=($!)
  port=$(wait_for "$out/$mode.log" '"port":[0-9]*' | cut -d: -f2)
  base[$mode]="http://127.0.0.1:$port"
done
auth="Authorization: Bearer sandbox-key"
wait_for_invalidations "${base[redis]}"
echo "alone: ${base[alone]}  redis: ${base[redis]} (redis-server :$redis_port)"
echo "wrk: 1 thread, $connections connections, $duration per run, $rounds rounds alternating; $(nproc) cores shared by all"
echo

rate() {
  wrk -t1 -c"$connections" -d"$duration" -H "$auth" "$1" \
    | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "NON-2XX " $0 > "/dev/stderr"}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

for path in /v1/account "/v1/billing/invoices?per_page=25"; do
  for mode in alone redis; do
    # Warm: the first read loads (and, with Redis, stores in L2); then L1 hits.
    curl -s -o /dev/null -H "$auth" "${base[$mode]}$path"
    curl -s -D - -o /dev/null -H "$auth" "${base[$mode]}$path" | grep -qi '^x-cache: HIT' \
      || { echo "$mode: $path is not a cache hit"; exit 1; }
  done
  declare -A runs=([alone]="" [redis]="")
  for round in $(seq 1 "$rounds"); do
    # Which goes first alternates too: the second of a pair runs on a warmer machine.
    order="alone redis"; [ $((round % 2)) -eq 0 ] && order="redis alone"
    for mode in $order; do
      runs[$mode]+="$(rate "${base[$mode]}$path") "
    done
  done
  a=$(echo "${runs[alone]}" | tr ' ' '\n' | grep . | median)
  r=$(echo "${runs[redis]}" | tr ' ' '\n' | grep . | median)
  echo "== $path"
  echo "   alone: ${runs[alone]}-> median $a req/s"
  echo "   redis: ${runs[redis]}-> median $r req/s"
  awk -v a="$a" -v r="$r" 'BEGIN {printf "   with redis / alone: %.3f (%+.1f%%)\n\n", r / a, (r / a - 1) * 100}'
done
redis_calls=$(redis-cli -p "$redis_port" info commandstats | grep -E '^cmdstat_(evalsha|eval|get|set):' || true)
echo "Redis commands during the whole run (L1 hits make none):"
echo "${redis_calls:-none}"
