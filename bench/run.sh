#!/usr/bin/env bash
# The gateway's cache hit against its two anchors, in one run on one machine
# (issue 12): a bare actix-web handler sending the same bytes (the framework
# limit, bench/bare) and nginx `proxy_cache` in front of the sandbox's Slitz
# `GET /service` with the Basic credentials injected (what ops could put
# there instead). Same wrk load on each (-t2 -c64), ROUNDS rounds rotating
# the order so a warming machine hits all alike; medians. The gateway logs as
# in production: one JSON line per request at `info`, to a file.
#   bash bench/anchors.sh        (DURATION=8s ROUNDS=3 CONNECTIONS=64 by default)
# Loopback only, bounded by DURATION × rounds. Record the output in RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk nginx curl; do
  command -v $tool >/dev/null || { echo "install $tool: apt-get install -y $tool"; exit 1; }
done
duration=${DURATION:-8s}
rounds=${ROUNDS:-3}
connections=${CONNECTIONS:-64}
out=$PWD/target/bench/anchors
source bench/lib.sh "$out"

cargo build --release --locked --quiet --bin gateway
CARGO_TARGET_DIR=$PWD/target/bench-bare cargo build --release --locked --quiet \
  --manifest-path bench/bare/Cargo.toml

# The gateway in sandbox mode, its log at info to a file.
started=$(date +%s%N)
target/release/gateway --listen 127.0.0.1:0 >"$out/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)
port=$(wait_for "$out/gateway.log" '"port":[0-9]*' | cut -d: -f2)
gw="http://127.0.0.1:$port"
until curl -sf -o /dev/null "$gw/healthz"; do sleep 0.005; done
first_answer_ms=$(( ($(date +%s%N) - started) / 1000000 ))
slitz=$(wait_for "$out/gateway.log" '"slitz":"[^"]*"' | cut -d'"' -f4)
auth="Authorization: Bearer sandbox-key"
curl -sf -H "$auth" "$gw/v1/services" >"$out/services.json"
curl -sf "$gw/healthz" >"$out/healthz.json"

# The framework limit: the same bytes from a bare handler.
target/bench-bare/release/bare 2 "/v1/services=$out/services.json" "/healthz=$out/healthz.json" \
  >"$out/bare.log" 2>&1 &
pids+=($!)
bare="http://127.0.0.1:$(wait_for "$out/bare.log" 'port=[0-9]*' | cut -d= -f2)"

# nginx proxy_cache in front of Slitz, credentials injected.
credentials=$(grep -o 'SLITZ_EMAIL: &str = "[^"]*' src/sandbox/data.rs | cut -d'"' -f2):$(grep -o 'SLITZ_PASSWORD: &str = "[^"]*' src/sandbox/data.rs | cut -d'"' -f2)
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
      proxy_pass $slitz/service;
      proxy_set_header Authorization "Basic $(printf %s "$credentials" | base64 -w0)";
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

# One wrk round: prints "req/s p50_ms p99_ms".
measure() {
  local url=$1; shift
  wrk -t2 -c"$connections" -d"$duration" --latency "$@" "$url" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { if (bad) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 } printf "%d %.2f %.2f\n", rps, p50, p99 }'
}

declare -A results
names=(bare nginx gateway healthz bare_healthz)
declare -A urls=([bare]="$bare/v1/services" [nginx]="$proxy/" [gateway]="$gw/v1/services" [healthz]="$gw/healthz" [bare_healthz]="$bare/healthz")
declare -A labels=(
  [bare]="bare actix-web, same bytes (framework limit)"
  [nginx]="nginx proxy_cache hit on Slitz /service"
  [gateway]="gateway GET /v1/services, cache hit"
  [healthz]="gateway GET /healthz"
  [bare_healthz]="bare actix-web, /healthz bytes"
)
for name in "${names[@]}"; do curl -sf -o /dev/null -H "$auth" "${urls[$name]}"; done
echo "wrk -t2 -c$connections -d$duration, $rounds rounds, $(nproc) cores shared by wrk and all servers"
for round in $(seq 1 "$rounds"); do
  # Rotate the order each round.
  order=("${names[@]:$(( (round - 1) % ${#names[@]} ))}" "${names[@]:0:$(( (round - 1) % ${#names[@]} ))}")
  for name in "${order[@]}"; do
    results[$name]+="$(measure "${urls[$name]}" -H "$auth")"$'\n'
  done
  echo "round $round done"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
column_of() { printf '%s' "${results[$1]}" | awk -v c="$2" 'NF { print $c }' | median; }
echo
printf '%-48s %10s %9s %9s\n' answer "req/s" p50_ms p99_ms
for name in "${names[@]}"; do
  printf '%-48s %10s %9s %9s\n' "${labels[$name]}" \
    "$(column_of "$name" 1)" "$(column_of "$name" 2)" "$(column_of "$name" 3)"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "gateway / bare handler:   $(ratio "$(column_of gateway 1)" "$(column_of bare 1)")   (target >= 0.80)"
echo "gateway / nginx:          $(ratio "$(column_of gateway 1)" "$(column_of nginx 1)")"
echo "gateway p99 / nginx p99:  $(ratio "$(column_of gateway 3)" "$(column_of nginx 3)")   (target <= 1.00)"
echo "/healthz / bare handler:  $(ratio "$(column_of healthz 1)" "$(column_of bare_healthz 1)")   (target >= 0.90)"
echo "start to first answer:    ${first_answer_ms} ms   (target < 200)"
echo "gateway peak RSS:         $(awk '/VmHWM/ {print $2 " kB"}' "/proc/$gateway/status")   (target < 64 MB)"
echo "gateway log lines:        $(wc -l <"$out/gateway.log")"
