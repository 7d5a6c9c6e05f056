#!/usr/bin/env bash
# Every hot-path figure of issue 12, in one run on one machine:
#  1. the gateway's cache hit against its two anchors: a bare actix-web
#     handler sending the same bytes (the framework limit, bench/bare) and
#     nginx `proxy_cache` in front of the simulated Slitz `GET /service` with
#     the Basic credentials injected (what ops could put there instead). Same
#     wrk load on each (-t2 -c64), ROUNDS rounds rotating the order so a
#     warming machine hits all alike; medians. Also `/healthz` against the
#     bare handler sending the same bytes;
#  2. the miss path's overhead: a DNA write (activate a customer) through the
#     gateway minus the same call made directly to the simulated DNA with a
#     token, one connection, p50 and p99; and that less what recording the
#     write in the registry took (its intent and outcome, the mean from the
#     gateway's own `gateway_registry_write_seconds`), the proxying alone;
#  3. 1,000 concurrent requests for one cold key (Slitz answering in 200 ms)
#     and the upstream calls they made;
#  4. tail latency: the p99 of cache hits alone, then while 64 connections
#     of misses on distinct keys wait on a Slitz that answers in 200 ms;
#  5. start to first answer and peak RSS.
# The gateway runs as ops run it: from a config file, against upstreams in
# another process, with Redis, a rate limit on the key, CORS, JSON access log
# at `info` to a file; the hit requests carry an Origin and a traceparent.
#   bash bench/run.sh        (DURATION=8s ROUNDS=3 CONNECTIONS=64 by default)
# Loopback only, bounded by DURATION per measurement. Needs wrk, nginx,
# redis-server and curl. Record the output in RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk nginx redis-server curl; do
  command -v $tool >/dev/null || { echo "install $tool: apt-get install -y ${tool/-server/}"; exit 1; }
done
duration=${DURATION:-8s}
rounds=${ROUNDS:-3}
connections=${CONNECTIONS:-64}
out=$PWD/target/bench/run
source bench/lib.sh "$out"
ulimit -n 8192 2>/dev/null || true # 1,000 connections at once, each end

cargo build --release --locked --quiet --bin gateway
cargo build --release --locked --quiet -p bare

# The simulated upstreams, in a process of their own.
target/release/gateway sandbox-upstreams --listen 127.0.0.1:0 >"$out/upstreams.log" 2>&1 &
pids+=($!)
upstreams=http://$(wait_for "$out/upstreams.log" '"addr":"127.0.0.1:[0-9]*"' | cut -d'"' -f4)
sandbox() { curl -sf -X "$1" -H 'Content-Type: application/json' ${3:+-d "$3"} "$upstreams/__sandbox/$2"; }

redis_port=$((20000 + RANDOM % 40000))
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$out" \
  >"$out/redis.log" 2>&1 &
pids+=($!)
wait_for "$out/redis.log" 'Ready to accept connections' >/dev/null

slitz_user=$(sandbox_constant SLITZ_EMAIL)
slitz_password=$(sandbox_constant SLITZ_PASSWORD)
origin=https://app.example
cat >"$out/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:0"
cors_allowed_origins = ["$origin"]

$(bench_key)

$(upstream_config "$upstreams")

[redis]
url = "redis://127.0.0.1:$redis_port/0"

[log]
format = "json"
filter = "info"
EOF

# The gateway, timed from exec to its first answer.
started=$(date +%s%N)
target/release/gateway --config "$out/gateway.toml" >"$out/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
until curl -sf -o /dev/null "http://127.0.0.1:$(grep -o '"port":[0-9]*' "$out/gateway.log" 2>/dev/null | head -1 | cut -d: -f2)/healthz"; do
  sleep 0.002
done
first_answer_ms=$(( ($(date +%s%N) - started) / 1000000 ))
gw="http://127.0.0.1:$(grep -o '"port":[0-9]*' "$out/gateway.log" | head -1 | cut -d: -f2)"
auth="Authorization: Bearer sandbox-key"
traceparent="traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
wait_for_invalidations "$gw"
curl -sf -H "$auth" "$gw/v1/services" >"$out/services.json"
curl -sf "$gw/healthz" >"$out/healthz.json"

# The framework limit: the same bytes from a bare handler.
target/release/bare 2 "/v1/services=$out/services.json" "/healthz=$out/healthz.json" \
  >"$out/bare.log" 2>&1 &
pids+=($!)
bare="http://127.0.0.1:$(wait_for "$out/bare.log" 'port=[0-9]*' | cut -d= -f2)"

# nginx proxy_cache in front of Slitz, credentials injected.
nginx_port=$((20000 + RANDOM % 40000))
mkdir -p "$out/nginx"
cat >"$out/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $out/nginx/nginx.pid;
error_log $out/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log $out/nginx/access.log;
  client_body_temp_path $out/nginx/body;
  proxy_temp_path $out/nginx/proxy;
  fastcgi_temp_path $out/nginx/fastcgi;
  uwsgi_temp_path $out/nginx/uwsgi;
  scgi_temp_path $out/nginx/scgi;
  proxy_cache_path $out/nginx/cache levels=1 keys_zone=slitz:10m;
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass $upstreams/slitz/api/service;
      proxy_set_header Authorization "Basic $(printf %s "$slitz_user:$slitz_password" | base64 -w0)";
      proxy_cache slitz;
      proxy_cache_valid 200 10m;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
    }
  }
}
CONF
nginx -p "$out/nginx" -c "$out/nginx/nginx.conf" &
pids+=($!)
proxy="http://127.0.0.1:$nginx_port"
until curl -sf -o /dev/null "$proxy/"; do sleep 0.05; done

# One wrk run: prints "req/s p50_ms p99_ms". ALLOW_ERRORS=1 accepts non-2xx.
measure() {
  local threads=$1 conns=$2 url=$3; shift 3
  wrk -t"$threads" -c"$conns" -d"$duration" --latency "$@" "$url" | awk -v allow="${ALLOW_ERRORS:-}" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { if (bad && !allow) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 } printf "%d %.3f %.3f\n", rps, p50, p99 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == ">=") ? v >= t : (op == "<=") ? v <= t : (op == "==") ? v == t : v < t; print (ok ? "met" : "NOT met") }'; }
summary=()
report() { # name value target-op target unit
  summary+=("$(printf '%-34s %10s %-6s (target %s %s%s)' "$1" "$2" "$5" "$3" "$4" "$5") $(verdict "$2" "$3" "$4")")
}

echo "== 1. cache hits against the anchors"
declare -A results
names=(bare nginx gateway gateway_br healthz bare_healthz)
declare -A urls=([bare]="$bare/v1/services" [nginx]="$proxy/" [gateway]="$gw/v1/services" [gateway_br]="$gw/v1/services" [healthz]="$gw/healthz" [bare_healthz]="$bare/healthz")
# The compressed hit: the entry keeps its brotli form, so a hit sends it
# without compressing (the same wrk load; only this header differs).
declare -A extra=([gateway_br]="Accept-Encoding: br, gzip")
declare -A labels=(
  [bare]="bare actix-web, same bytes (framework limit)"
  [nginx]="nginx proxy_cache hit on Slitz /service"
  [gateway]="gateway GET /v1/services, cache hit"
  [gateway_br]="the same hit, Accept-Encoding: br, gzip"
  [healthz]="gateway GET /healthz"
  [bare_healthz]="bare actix-web, /healthz bytes"
)
for name in "${names[@]}"; do curl -sf -o /dev/null -H "$auth" "${urls[$name]}"; done
echo "wrk -t2 -c$connections -d$duration, $rounds rounds, $(nproc) cores shared by wrk and all servers"
for round in $(seq 1 "$rounds"); do
  order=("${names[@]:$(( (round - 1) % ${#names[@]} ))}" "${names[@]:0:$(( (round - 1) % ${#names[@]} ))}")
  for name in "${order[@]}"; do
    results[$name]+="$(measure 2 "$connections" "${urls[$name]}" -H "$auth" -H "Origin: $origin" -H "$traceparent" -H "${extra[$name]:-Accept-Encoding: identity}")"$'\n'
  done
  echo "round $round done"
done
column_of() { printf '%s' "${results[$1]}" | awk -v c="$2" 'NF { print $c }' | median; }
printf '%-48s %10s %9s %9s\n' answer "req/s" p50_ms p99_ms
for name in "${names[@]}"; do
  printf '%-48s %10s %9s %9s\n' "${labels[$name]}" \
    "$(column_of "$name" 1)" "$(column_of "$name" 2)" "$(column_of "$name" 3)"
done
report "hit / bare handler (req/s)" "$(ratio "$(column_of gateway 1)" "$(column_of bare 1)")" ">=" 0.80 ×
report "hit / nginx (req/s)" "$(ratio "$(column_of gateway 1)" "$(column_of nginx 1)")" ">=" 1.00 ×
report "br hit / identity hit (req/s)" "$(ratio "$(column_of gateway_br 1)" "$(column_of gateway 1)")" ">=" 0.90 ×
report "hit p99 / nginx p99" "$(ratio "$(column_of gateway 3)" "$(column_of nginx 3)")" "<=" 1.00 ×
report "/healthz / bare handler (req/s)" "$(ratio "$(column_of healthz 1)" "$(column_of bare_healthz 1)")" ">=" 0.90 ×

echo
echo "== 2. miss path: a DNA write through the gateway minus the same call made directly"
customer=$(curl -sf -X POST -H "$auth" -H 'Content-Type: application/json' "$gw/v1/customers" -d '{
  "start_billing_date": "2026-12-01", "customer_id": "BENCH-'"$RANDOM$RANDOM"'", "email": "bench@example.com",
  "first_name": "Bench", "last_name": "Mark", "address": "1 Loop Road", "zipcode": "33134"}' \
  | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
token=$(curl -sf -X POST "$upstreams/dna/api/oauth/token" \
  -d "grant_type=password&client_id=3&client_secret=sandbox-dna-client-secret&username=api@sandbox.example&password=sandbox-dna-password&scope=residential" \
  | grep -o '"access_token":"[^"]*' | cut -d'"' -f4)
echo 'wrk.method = "POST"' >"$out/post.lua"
direct=$(measure 1 1 "$upstreams/dna/api/residential/client/$customer/activate" -s "$out/post.lua" -H "Authorization: Bearer $token")
# Milliseconds spent recording writes so far (both steps) and writes settled.
recorded() {
  curl -sf "$gw/metrics" | awk '
    /^gateway_registry_write_seconds_sum\{/ { ms += $2 * 1000 }
    /^gateway_registry_write_seconds_count\{step="outcome"\}/ { n = $2 }
    END { printf "%.6f %d\n", ms, n }'
}
read -r recorded_ms recorded_n <<<"$(recorded)"
through=$(measure 1 1 "$gw/v1/customers/$customer/activate" -s "$out/post.lua" -H "$auth")
read -r recorded_ms_after recorded_n_after <<<"$(recorded)"
recording=$(awk -v a="$recorded_ms_after" -v b="$recorded_ms" -v n="$((recorded_n_after - recorded_n))" \
  'BEGIN { if (n > 0) printf "%.3f", (a - b) / n; else print "nan" }')
printf '%-48s %10s %9s %9s\n' "DNA activate, direct (1 connection)" $direct
printf '%-48s %10s %9s %9s\n' "DNA activate, through the gateway" $through
read -r _ direct_p50 direct_p99 <<<"$direct"
read -r _ through_p50 through_p99 <<<"$through"
printf '%-48s %10s ms (mean per write)\n' "of which recording it in the registry" "$recording"
summary+=("$(printf '%-34s %10s ms' "miss overhead p50" "$(awk -v a="$through_p50" -v b="$direct_p50" 'BEGIN { printf "%.3f", a - b }')")")
summary+=("$(printf '%-34s %10s ms' "miss overhead p99" "$(awk -v a="$through_p99" -v b="$direct_p99" 'BEGIN { printf "%.3f", a - b }')")")
summary+=("$(printf '%-34s %10s ms' "recording a write (mean)" "$recording")")
report "miss overhead p50, less recording" "$(awk -v a="$through_p50" -v b="$direct_p50" -v r="$recording" 'BEGIN { printf "%.3f", a - b - r }')" "<=" 0.3 ms

echo
echo "== 3. 1,000 concurrent requests for one cold key, Slitz answering in 200 ms"
sandbox POST faults '{"path":"/slitz/api/invoice","method":"GET","fault":{"kind":"delay","ms":200}}' >/dev/null
sandbox DELETE calls >/dev/null
cold="$gw/v1/billing/invoices?page=1&per_page=7"
# wrk opens its 1,000 connections and sends one request on each before the
# first answer can come back; the rest of the second are hits.
wrk -t2 -c1000 -d2s -H "$auth" "$cold" >"$out/cold.txt"
cold_calls=$(sandbox GET calls | grep -o '"GET /slitz/api/invoice":[0-9]*' | cut -d: -f2 || true)
[ -n "$cold_calls" ] || { echo "the simulated Slitz counted no invoice listing"; exit 1; }
grep -E "requests in|Non-2xx|Socket errors" "$out/cold.txt" || true
report "1,000 cold -> upstream calls" "$cold_calls" "==" 1 ""

echo
echo "== 4. tail: cache hits alone, then beside 64 connections of misses on a 200 ms Slitz"
hits_alone=$(measure 1 16 "$gw/v1/services" -H "$auth")
ALLOW_ERRORS=1 measure 1 64 "$gw/" -s bench/misses.lua -H "$auth" >"$out/misses.txt" &
miss_load=$!
sleep 0.5
hits_beside=$(measure 1 16 "$gw/v1/services" -H "$auth")
wait $miss_load
printf '%-48s %10s %9s %9s\n' "hits alone (1 thread, 16 connections)" $hits_alone
printf '%-48s %10s %9s %9s\n' "hits beside 64 connections of misses" $hits_beside
printf '%-48s %10s %9s %9s\n' "the misses (200 ms each)" $(cat "$out/misses.txt")
sandbox DELETE faults >/dev/null
read -r _ _ alone_p99 <<<"$hits_alone"
read -r _ _ beside_p99 <<<"$hits_beside"
report "hit p99 rise beside misses" "$(awk -v a="$beside_p99" -v b="$alone_p99" 'BEGIN { printf "%.3f", a - b }')" "<=" 1 ms

report "start to first answer" "$first_answer_ms" "<" 200 ms
report "peak RSS" "$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$gateway/status")" "<" 64 MB
echo
echo "== figures ($(git rev-parse --short HEAD), $(date -u +%FT%TZ), $(nproc) cores)"
printf '%s\n' "${summary[@]}"
echo "gateway access log lines: $(grep -c '"log":"access"' "$out/gateway.log" || true)"
