#!/usr/bin/env bash
# The API contract, checked by tools we did not write, against the sandbox
# gateway on a free loopback port:
#   1. openapi-spec-validator on openapi/openapi.json
#   2. Swagger UI in headless Chromium (playwright-core): authorize, Try it out
#   3. Schemathesis on the served document, every check: bounded examples at a fixed seed, then at
#      least five minutes of fuzzing at a seed that changes every run (printed,
#      so a failure can be replayed with SCHEMATHESIS_RANDOM_SEED=<seed>)
#   4. openapi-typescript types + tsc on examples/typescript
# Needs python3 (venv), node/npm and /usr/bin/chromium (.ci/run installs it).
# Artifacts (screenshot, JUnit report, gateway log) go to target/contract/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/contract
mkdir -p "$out"

echo "--> python tools"
[ -x "$out/venv/bin/st" ] || {
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q 'schemathesis==4.32.5' 'openapi-spec-validator==0.7.2'
}
echo "--> node tools"
(cd tests/contract && npm ci --no-audit --no-fund --loglevel=error)

echo "--> 1. openapi-spec-validator"
"$out/venv/bin/openapi-spec-validator" openapi/openapi.json

echo "--> the gateway, configured for the simulated upstreams"
cargo build --locked --quiet --bin gateway
# The simulators, and a configuration for them (the sandbox key, their URLs):
# the real configuration path, so GATEWAY__* variables apply. Streams end
# after 1 s (events.max_stream_seconds): to Schemathesis a stream that never
# ends is a request that times out; ended, each of its events is checked
# against the stream's schema.
rm -f "$out/sandbox.toml"
target/debug/gateway sandbox-upstreams --listen 127.0.0.1:0 --config-out "$out/sandbox.toml" \
  >"$out/upstreams.log" 2>&1 &
upstreams=$!
trap 'kill $upstreams 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  [ -s "$out/sandbox.toml" ] && break
  kill -0 "$upstreams" 2>/dev/null || { cat "$out/upstreams.log"; exit 1; }
  sleep 0.2
done
[ -s "$out/sandbox.toml" ] || { echo "the simulators did not start"; cat "$out/upstreams.log"; exit 1; }
GATEWAY__EVENTS__MAX_STREAM_SECONDS=1 target/debug/gateway --config "$out/sandbox.toml" >"$out/gateway.log" 2>&1 &
gateway=$!
trap 'kill $gateway $upstreams 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 150); do
  port=$(python3 -c '
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("fields", {}).get("message") == "gateway listening":
        print(event["fields"]["port"])
        break
' "$out/gateway.log")
  [ -n "$port" ] && break
  kill -0 "$gateway" 2>/dev/null || { cat "$out/gateway.log"; exit 1; }
  sleep 0.2
done
[ -n "$port" ] || { echo "the gateway did not start"; cat "$out/gateway.log"; exit 1; }
base="http://127.0.0.1:$port"
echo "    $base"

echo "--> 2. Swagger UI in Chromium (first: fuzzing changes the sandbox account)"
GATEWAY_URL="$base" SCREENSHOT="$out/swagger-ui.png" node tests/contract/swagger-ui.mjs

# Schemathesis fuzzes the document the gateway serves, the one frontends
# generate from: `fields` included (a cut answer is its own media type with
# its own schema) and `GET /v1/events` (each event against the stream's
# per-event schema).
# Hypothesis, describing a strategy while Schemathesis builds coverage
# cases, sometimes dies under CPython 3.11 with "SystemError: AST
# constructor recursion depth mismatch" (a CPython bug in ast.parse's
# recursion accounting; the same seed passes on the next try). That is no
# finding about the gateway: such a run, with no failed check, is run again
# (at most twice). Any failed check fails at once.
schemathesis() {
  local log status attempt
  log=$(mktemp)
  for attempt in 1 2 3; do
    set +e
    "$out/venv/bin/st" --config-file tests/contract/schemathesis.toml run "$base/openapi.json" --url "$base" \
      --header "Authorization: Bearer sandbox-key" \
      --checks all --workers 2 --request-timeout 20 --no-color "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    [ "$status" -eq 0 ] && break
    if grep -q "AST constructor recursion depth mismatch" "$log" && ! grep -q "^Failures:" "$log" \
      && [ "$attempt" -lt 3 ]; then
      echo "    Schemathesis hit the CPython 3.11 ast SystemError (no failed check): running it again"
      continue
    fi
    break
  done
  rm -f "$log"
  return "$status"
}
echo "--> 3a. Schemathesis, fixed seed (the same inputs every run)"
schemathesis --max-examples "${SCHEMATHESIS_EXAMPLES:-40}" --seed "${SCHEMATHESIS_SEED:-20261123}" \
  --report junit --report-dir "$out/fixed"

# A fixed seed only ever tries the same inputs (it missed a panic on
# multi-byte text); this run tries new ones every time.
seed="${SCHEMATHESIS_RANDOM_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
seconds="${SCHEMATHESIS_SECONDS:-300}"
echo "--> 3b. Schemathesis, moving seed $seed for ${seconds}s"
echo "    replay with: SCHEMATHESIS_RANDOM_SEED=$seed SCHEMATHESIS_SECONDS=$seconds bash tests/contract/run.sh"
schemathesis --seed "$seed" --max-time "$seconds" \
  --report junit --report-dir "$out/random" || {
  echo "    Schemathesis failed at seed $seed: replay with SCHEMATHESIS_RANDOM_SEED=$seed"
  exit 1
}

echo "--> 4. TypeScript client types"
tests/contract/node_modules/.bin/openapi-typescript openapi/openapi.json -o examples/typescript/api.d.ts
tests/contract/node_modules/.bin/tsc -p examples/typescript
echo "    examples/typescript type-checks against the committed spec"
echo "--> contract: ok"
