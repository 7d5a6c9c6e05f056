# Shared by the bench scripts (sourced, not run): a fresh output directory,
# every process started is stopped on exit, waiting on a log line or on a
# gateway hearing Redis.
#   source bench/lib.sh "$out"

rm -rf "$1" && mkdir -p "$1"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# Waits for "$2" in log file $1 and prints the first match.
wait_for() {
  for _ in $(seq 1 200); do
    if grep -o "$2" "$1" >/dev/null 2>&1; then grep -o "$2" "$1" | head -1; return; fi
    sleep 0.05
  done
  cat "$1"; exit 1
}

# Waits until the gateway at $1 hears cache invalidations from Redis (its
# `/readyz` says so); until then reads bypass the cache.
wait_for_invalidations() {
  for _ in $(seq 1 100); do
    curl -s "$1/readyz" | grep -q '"cache_invalidations":{"status":"up"' && return
    sleep 0.05
  done
  echo "the gateway at $1 never heard invalidations from Redis"; exit 1
}

# The sandbox's public credentials, read where the simulators define them.
sandbox_constant() { grep -o "$1: &str = \"[^\"]*" crates/sandbox/src/data.rs | cut -d'"' -f2; }

# The bench's one API key (`sandbox-key`, every scope) at 1,000,000/s: so
# nothing is refused but every request is counted against a rate.
bench_key() {
  cat <<EOF
[[auth.api_keys]]
name = "bench"
sha256 = "$(printf %s sandbox-key | sha256sum | cut -d' ' -f1)"
scopes = ["read", "write", "secrets", "audit"]
rate_per_second = 1000000
EOF
}

# The [dna], [slitz] and [cache] sections of a gateway config for the
# simulated upstreams at base URL $1 (http://host:port).
upstream_config() {
  cat <<EOF
[dna]
base_url = "$1/dna/api"
client_id = "3"
client_secret = "sandbox-dna-client-secret"
username = "api@sandbox.example"
password = "sandbox-dna-password"
scope = "residential"

[slitz]
base_url = "$1/slitz/api"
username = "$(sandbox_constant SLITZ_EMAIL)"
password = "$(sandbox_constant SLITZ_PASSWORD)"
timezone = "Europe/Stockholm"

[cache]
ttl_seconds = 3600
EOF
}
