#!/usr/bin/env bash
# The registry at scale (issue 28), on SQLite and on PostgreSQL:
#  1. 100,000 customers and 1,000,000 audit entries are written straight into
#     the registry's tables (after the gateway migrated them), then filtered
#     list pages of 50 are read through the gateway: p50 and p99 per page
#     kind (target: p99 under 10 ms);
#  2. what recording adds to a write: the gateway's own histogram of the
#     registry's two steps (intent before the call, outcome after it), read
#     from /metrics after 2,000 activates (target: under 1 ms on SQLite).
# Loopback only, bounded by DURATION per page kind. Needs wrk, curl, sqlite3
# and Debian's PostgreSQL (tests/run.sh installs it). Record the output in
# RESULTS.md.
#   bash bench/registry.sh       (DURATION=5s by default)
#   CONNECTIONS=1 BACKENDS=sqlite bash bench/registry.sh
# CONNECTIONS (default 4) is wrk's connections per page: with 4, the page
# queries queue on a 2-core machine that also runs wrk and the database, so
# p99 there is latency under load; with 1, each page's own time.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk curl sqlite3; do
  command -v $tool >/dev/null || { echo "install $tool: apt-get install -y $tool"; exit 1; }
done
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "install postgresql: apt-get install -y postgresql"; exit 1; }
duration=${DURATION:-5s}
connections=${CONNECTIONS:-4}
backends=${BACKENDS:-sqlite postgres}
out=$PWD/target/bench/registry
source bench/lib.sh "$out"

cargo build --release --locked --quiet --bin gateway

target/release/gateway sandbox-upstreams --listen 127.0.0.1:0 >"$out/upstreams.log" 2>&1 &
pids+=($!)
upstreams=http://$(wait_for "$out/upstreams.log" '"addr":"127.0.0.1:[0-9]*"' | cut -d'"' -f4)

# A PostgreSQL cluster of its own, as the postgres user when run as root.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$out/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$out/pg"
as_pg "$pg_bin/initdb" -D "$out/pg/data" -U postgres --auth=trust --no-sync -E UTF8 >/dev/null
pg_port=$((20000 + RANDOM % 40000))
as_pg "$pg_bin/pg_ctl" -D "$out/pg/data" -l "$out/pg/log" -w \
  -o "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories=" start >/dev/null
trap 'as_pg "$pg_bin/pg_ctl" -D "$out/pg/data" -m immediate stop >/dev/null 2>&1 || true; kill "${pids[@]}" 2>/dev/null || true' EXIT
psql_pg() { psql -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

# $1: sqlite or postgres. Starts a gateway on that registry; sets $gw, $gateway.
start_gateway() {
  local url
  if [ "$1" = sqlite ]; then url="sqlite://$out/registry.sqlite3"; else url="postgres://postgres@127.0.0.1:$pg_port/postgres"; fi
  cat >"$out/gateway-$1.toml" <<EOF
[server]
listen = "127.0.0.1:0"

$(bench_key)
$(upstream_config "$upstreams")

[registry]
url = "$url"

[log]
format = "json"
filter = "info"
access = false
EOF
  target/release/gateway --config "$out/gateway-$1.toml" >"$out/gateway-$1.log" 2>&1 &
  gateway=$!
  pids+=($gateway)
  for _ in $(seq 1 200); do
    port=$(grep -o '"port":[0-9]*' "$out/gateway-$1.log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
    sleep 0.05
  done
  gw="http://127.0.0.1:$port"
  # The first use migrates: a read that answers means the tables are there.
  until curl -sf -o /dev/null -H "Authorization: Bearer sandbox-key" "$gw/v1/customers?limit=1"; do sleep 0.1; done
}

seed_sql() { # $1: sqlite or postgres. 100,000 customers, 1,000,000 audit entries.
  local series_c series_a
  if [ "$1" = sqlite ]; then
    series_c="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)"
    series_a="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)"
    from_c="FROM n"; from_a="FROM n"
  else
    series_c=""; series_a=""
    from_c="FROM generate_series(1, 100000) AS n(i)"; from_a="FROM generate_series(1, 1000000) AS n(i)"
  fi
  cat <<SQL
$series_c
INSERT INTO customers (dna_id, customer_id, email, first_name, last_name, status, search,
  created_at_ms, created_by, first_seen_ms, updated_at_ms, updated_by, last_seq, last_operation, last_outcome)
SELECT 1000000 + i, 'SEED-' || i, 'user' || i || '@example.com', 'First' || i, 'Last' || (i % 1000),
  CASE i % 3 WHEN 0 THEN 'active' WHEN 1 THEN 'pending' ELSE 'suspended' END,
  lower('first' || i || ' last' || (i % 1000) || ' user' || i || '@example.com'),
  1700000000000 + i * 1000, 'key-' || (i % 20), 1700000000000 + i * 1000, 1700000000000 + i * 1000,
  'key-' || (i % 20), i, 'customer.create', 'succeeded'
$from_c;
$series_a
INSERT INTO audit_entries (at_ms, operation, principal, request_id, customer_ref, dna_id, request)
SELECT 1700000000000 + i * 100,
  CASE i % 3 WHEN 0 THEN 'customer.create' WHEN 1 THEN 'customer.activate' ELSE 'customer.suspend' END,
  'key-' || (i % 20), 'req-' || i, 'SEED-' || (i % 100000), 1000000 + (i % 100000), '{}'
$from_a;
INSERT INTO audit_outcomes (seq, at_ms, outcome, dna_id)
SELECT seq, at_ms + 50,
  CASE WHEN seq % 50 = 0 THEN 'unknown' WHEN seq % 10 = 0 THEN 'refused' ELSE 'succeeded' END, dna_id
FROM audit_entries;
SQL
}

# One wrk run on one page: prints "p50_ms p99_ms".
page() {
  wrk -t1 -c"$connections" -d"$duration" --latency -H "Authorization: Bearer sandbox-key" "$gw$1" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } /Non-2xx/ { bad = 1 }
    END { if (bad) { print "non-2xx answers" > "/dev/stderr"; exit 1 } printf "%.3f %.3f\n", p50, p99 }'
}

pages=(
  "/v1/customers?limit=50"
  "/v1/customers?status=active&limit=50"
  "/v1/customers?created_by=key-7&limit=50"
  "/v1/customers?email=user77777@example.com"
  "/v1/customers?q=last42&limit=50"
  "/v1/customers?q=first4242&limit=50"
  "/v1/customers?q=example&limit=50"
  "/v1/audit?limit=50"
  "/v1/audit?principal=key-3&limit=50"
  "/v1/audit?outcome=refused&limit=50"
  "/v1/audit?customer=1012345&limit=50"
  "/v1/audit?since=2023-11-15T10:00:00Z&until=2023-11-15T11:00:00Z&limit=50"
)

for backend in $backends; do
  echo
  echo "== $backend: 100,000 customers, 1,000,000 audit entries"
  start_gateway "$backend"
  started=$(date +%s)
  if [ "$backend" = sqlite ]; then
    seed_sql sqlite | sqlite3 "$out/registry.sqlite3"
    sqlite3 "$out/registry.sqlite3" "ANALYZE;"
  else
    seed_sql postgres | psql_pg
    psql_pg -c "ANALYZE;"
  fi
  echo "seeded in $(( $(date +%s) - started )) s"
  # The cursor of the 2nd page of the newest list, as a caller would follow it.
  cursor=$(curl -sf -H "Authorization: Bearer sandbox-key" "$gw/v1/customers?limit=50" | grep -o '"next_cursor":"[^"]*' | cut -d'"' -f4)
  printf '%-72s %9s %9s\n' page p50_ms p99_ms
  for path in "${pages[@]}" "/v1/customers?limit=50&cursor=$cursor"; do
    printf '%-72s %9s %9s\n' "$path" $(page "$path")
  done

  echo "-- recording a write: 2,000 activates, one connection"
  echo 'wrk.method = "POST"' >"$out/post.lua"
  wrk -t1 -c1 -d60s -s "$out/post.lua" -H "Authorization: Bearer sandbox-key" \
    "$gw/v1/customers/6518/activate" >/dev/null &
  wrk_pid=$!
  for _ in $(seq 1 600); do
    count=$(curl -sf "$gw/metrics" | awk '/^gateway_registry_write_seconds_count\{step="outcome"\}/ { print $2 }')
    [ "${count:-0}" -ge 2000 ] 2>/dev/null && break
    sleep 0.1
  done
  kill "$wrk_pid" 2>/dev/null || true
  curl -sf "$gw/metrics" | awk '
    /^gateway_registry_write_seconds_sum\{step="intent"\}/ { si = $2 }
    /^gateway_registry_write_seconds_count\{step="intent"\}/ { ci = $2 }
    /^gateway_registry_write_seconds_sum\{step="outcome"\}/ { so = $2 }
    /^gateway_registry_write_seconds_count\{step="outcome"\}/ { co = $2 }
    END { printf "intent: %.3f ms mean over %d; outcome: %.3f ms mean over %d; a write: %.3f ms\n",
      si / ci * 1000, ci, so / co * 1000, co, (si / ci + so / co) * 1000 }'
  kill "$gateway" 2>/dev/null || true
done
