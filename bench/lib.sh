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
