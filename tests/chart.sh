#!/usr/bin/env bash
# The Helm chart and the image, as CI checks them (run from .ci/run; needs helm, hadolint,
# kubectl and python3 with PyYAML on PATH, and the debug build of `route`):
#   1. hadolint on the Dockerfile;
#   2. helm lint --strict and helm template with the default values and each charts/route/ci/*;
#      a wrong value must fail at install (values.schema.json); docs/configuration.md and the
#      schema of routeConfig.spec match the CRD (docs/gen-reference, tests/chart/gen-values-schema);
#   3. assertions on every rendering (tests/chart/check_rendered.py): least-privilege RBAC,
#      non-root, read-only root filesystem, no capabilities, probes, downward API, ...;
#   4. every rendering applied with kubectl to a real kube-apiserver, and the default release
#      serving as its Deployment runs it: tests/kube_chart.rs (in `cargo test`), not here;
#   5. docs/migration.md's patches, applied offline (kubectl patch --local) to a router shaped
#      like abcdesktop's and checked against the chart's rendering (tests/chart/check_migration.py).
# Prints `N passed, N failed` at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
CHART=charts/route
NS=abcdesktop
RELEASE=route
BIN=target/debug
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
step() { local what=$1; shift; if "$@" >"$work/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$work/out"; fi; }

# 1. The image.
step "hadolint Dockerfile" hadolint Dockerfile

# 2 and 3. Every values file.
values=("")
for f in "$CHART"/ci/*.yaml; do values+=("$f"); done
for v in "${values[@]}"; do
  name=${v:-default}
  step "helm lint --strict ($name)" helm lint --strict "$CHART" ${v:+-f "$v"}
  if helm template "$RELEASE" "$CHART" -n "$NS" ${v:+-f "$v"} >"$work/rendered.yaml" 2>"$work/err"; then
    pass "helm template ($name)"
    step "rendered manifests ($name)" python3 tests/chart/check_rendered.py "$work/rendered.yaml" "$name"
  else
    fail "helm template ($name)"; cat "$work/err"
  fi
done
for bad in service.type=Nodeport service.nodePort=80 tls.enabled=true server.logFormat=xml \
  replicaCount=-1 keys.signingSecretName=Bad_Name routeConfig.spec.keys.graceSeconds=1 \
  routeConfig.spec.limits.drainSeconds=abc routeConfig.spec.limits.drainSecond=60 \
  routeConfig.spec.ports.websockify=70000 routeConfig.spec.services.pyos.port=0 \
  routeConfig.spec.jwt.decryption=oaep terminationGracePeriodSeconds=0 \
  terminationGracePeriodSeconds=20 podLabels.netpol/dns=true securityContext.runAsNonRoot=false \
  securityContext.runAsNonRoot=null podSecurityContext.runAsNonRoot=false podSecurityContext=null \
  securityContext.runAsUser=0 autoscaling.enabled=true,autoscaling.minReplicas=20; do
  # ... and the error names the value (a field of its path other than routeConfig.spec).
  key=${bad%%=*}
  if helm template "$RELEASE" "$CHART" --set "$bad" >/dev/null 2>"$work/err"; then
    fail "a wrong value fails at install: $bad"
  elif ! tr '.' '\n' <<<"$key" | grep -vxE 'routeConfig|spec' | grep -qFf - "$work/err"; then
    fail "a wrong value fails at install, naming it: $bad"; sed 's/^/     /' "$work/err"
  else
    pass "a wrong value fails at install: $bad"
  fi
done

# 5 (offline). The migration guide's commands on abcdesktop's router, and
# http-router re-pointed at the release as mode B installs it.
for v in nodeport https; do
  helm template "$RELEASE" "$CHART" -n "$NS" -f "$CHART/ci/abcdesktop-$v-values.yaml" --set service.type=ClusterIP \
    >"$work/mode-b-$v.yaml" 2>"$work/err" || cat "$work/err"
done
step "docs/migration.md's commands (tests/chart/check_migration.py)" \
  python3 tests/chart/check_migration.py "$work/mode-b-nodeport.yaml" "$work/mode-b-https.yaml"

# The reference and the values schema follow the CRD.
crd=""
if ls "$CHART"/crds/*.yaml >/dev/null 2>&1; then
  crd=$(ls "$CHART"/crds/*.yaml)
elif "$BIN/route" crd >"$work/crd.yaml" 2>/dev/null; then
  crd="$work/crd.yaml"
fi
if [ -n "$crd" ]; then
  step "docs/configuration.md is current (else run docs/gen-reference)" python3 docs/gen-reference "$crd" --check
  step "values.schema.json routeConfig.spec is the CRD's (else run tests/chart/gen-values-schema)" \
    python3 tests/chart/gen-values-schema "$crd" --check
fi

echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
