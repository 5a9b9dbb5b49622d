#!/usr/bin/env bash
# The Helm chart and the image, as CI checks them (run from .ci/run; needs helm, hadolint,
# kubectl and python3 with PyYAML on PATH, and the debug build of `route` and
# `route-test-apiserver`):
#   1. hadolint on the Dockerfile;
#   2. helm lint --strict and helm template with the default values and each charts/route/ci/*;
#      a wrong value must fail at install (values.schema.json); docs/configuration.md and the
#      schema of routeConfig.spec match the CRD (docs/gen-reference, tests/chart/gen-values-schema);
#   3. assertions on every rendering (tests/chart/check_rendered.py): least-privilege RBAC,
#      non-root, read-only root filesystem, no capabilities, probes, downward API, ...;
#   4. the default rendering applied with the real kubectl to the in-memory Kubernetes API test
#      server (the kinds it serves: the CRD, Namespace, Secrets, RouteConfig; the others are
#      checked by step 3), then the real `route serve --kube`, started with the Deployment's
#      args and env, serving a desktop request through the rendered RouteConfig.
#   5. docs/migration.md's patches, applied offline (kubectl patch --local) to a router shaped
#      like abcdesktop's and checked against the chart's rendering (tests/chart/check_migration.py);
#      run before step 4, which points KUBECONFIG at the test server.
# Prints `N passed, N failed` at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
CHART=charts/route
NS=abcdesktop
RELEASE=route
BIN=target/debug
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
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

# 5 (offline, before the API server). The migration guide's commands on abcdesktop's router, and
# http-router re-pointed at the release as mode B installs it.
for v in nodeport https; do
  helm template "$RELEASE" "$CHART" -n "$NS" -f "$CHART/ci/abcdesktop-$v-values.yaml" --set service.type=ClusterIP \
    >"$work/mode-b-$v.yaml" 2>"$work/err" || cat "$work/err"
done
step "docs/migration.md's commands (tests/chart/check_migration.py)" \
  python3 tests/chart/check_migration.py "$work/mode-b-nodeport.yaml" "$work/mode-b-https.yaml"

# 4. Applied to the test API server, then serving.
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
if [ -z "$crd" ] || ! "$BIN/route" serve --help 2>/dev/null | grep -c -- '--kube' >/dev/null; then
  echo "skip apply-and-serve: no CRD in $CHART/crds and no \`route crd\`/\`serve --kube\` in this build"
else
  export KUBECONFIG="$work/kubeconfig"
  "$BIN/route-test-apiserver" --kubeconfig "$KUBECONFIG" >"$work/apiserver.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q '^listening' "$work/apiserver.out" && break; sleep 0.1; done
  helm template "$RELEASE" "$CHART" -n "$NS" >"$work/rendered.yaml"
  # Split the rendering: what the test server serves is applied, the rest was checked above.
  python3 - "$work" <<'PY'
import sys, yaml
work = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(f"{work}/rendered.yaml")) if d]
served = [d for d in docs if d["kind"] == "RouteConfig"]
yaml.safe_dump_all(served, open(f"{work}/served.yaml", "w"))
dep = next(d for d in docs if d["kind"] == "Deployment")
c = dep["spec"]["template"]["spec"]["containers"][0]
with open(f"{work}/args", "w") as f:
    f.write("\n".join(a for a in c["args"] if not a.startswith(("--listen", "--admin-listen"))) + "\n")
with open(f"{work}/env", "w") as f:
    for e in c["env"]:
        if "value" in e:
            f.write(f"{e['name']}={e['value']}\n")
PY
  step "kubectl apply the CRD" kubectl apply -f "$crd"
  step "kubectl wait for the CRD" kubectl wait --for=condition=Established --timeout=10s crd/routeconfigs.route.abcdesktop.io
  step "kubectl create namespace" kubectl create namespace "$NS"
  "$BIN/route" keys --out "$work/keys" >/dev/null 2>&1
  step "kubectl create the signing Secret" kubectl -n "$NS" create secret generic abcdesktopjwtdesktopsigning \
    --from-file="$work/keys/abcdesktop_jwt_desktop_signing_public_key.pem" \
    --from-file="$work/keys/abcdesktop_jwt_desktop_signing_private_key.pem"
  step "kubectl create the payload Secret" kubectl -n "$NS" create secret generic abcdesktopjwtdesktoppayload \
    --from-file="$work/keys/abcdesktop_jwt_desktop_payload_public_key.pem" \
    --from-file="$work/keys/abcdesktop_jwt_desktop_payload_private_key.pem"
  step "kubectl apply the rendered RouteConfig" kubectl apply -f "$work/served.yaml"
  # A desktop: a plain HTTP server on loopback, reached through /container/<JWT>/<port>/.
  mkdir -p "$work/desk" && echo "desktop ok" >"$work/desk/index.html"
  desk_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  python3 -m http.server "$desk_port" --bind 127.0.0.1 --directory "$work/desk" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$desk_port/" && break; sleep 0.1; done
  # route as the Deployment runs it: the same args and env (downward API values filled in).
  mapfile -t args <"$work/args"
  : >"$work/route.out"
  env $(cat "$work/env") POD_NAMESPACE="$NS" POD_NAME="$RELEASE-0" NODE_NAME=node-1 \
    "$BIN/route" "${args[@]}" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$work/route.out" 2>"$work/route.err" &
  pids+=($!)
  addr="" admin=""
  for _ in $(seq 150); do
    addr=$(sed -n 's/^listening http //p' "$work/route.out" | head -1)
    admin=$(sed -n 's/^listening admin //p' "$work/route.out" | head -1)
    [ -n "$addr" ] && [ -n "$admin" ] && break; sleep 0.1
  done
  ready=""
  for _ in $(seq 150); do
    [ -n "$admin" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz")" = 200 ] && { ready=1; break; }
    sleep 0.1
  done
  if [ -n "$ready" ]; then pass "route serve --kube is ready ($addr)"; else fail "route serve --kube is ready"; tail -20 "$work/route.err"; fi
  token=$("$BIN/route" token --keys "$work/keys" --target 127.0.0.1)
  body=$(curl -s --max-time 10 "http://$addr/container/$token/$desk_port/index.html")
  if [ "$body" = "desktop ok" ]; then pass "a desktop request through the release"; else fail "a desktop request through the release: got '$body'"; tail -20 "$work/route.err"; fi
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://$addr/container/x.y.z/$desk_port/index.html")
  if [ "$code" = 401 ]; then pass "a bad token is refused (401)"; else fail "a bad token is refused: got $code"; fi
  if curl -s --max-time 10 "http://$addr/metrics" | grep -q '^route_requests_total'; then
    fail "/metrics is not served on the public listener"
  else pass "/metrics is not served on the public listener"; fi
  node=$(curl -s --max-time 10 "http://$addr/node")
  if [ "$node" = node-1 ]; then pass "/node answers NODE_NAME"; else fail "/node answers NODE_NAME: got '$node'"; fi
  status=""
  for _ in $(seq 100); do
    status=$(kubectl -n "$NS" get routeconfig "$RELEASE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
    [ "$status" = True ] && break; sleep 0.1
  done
  if [ "$status" = True ]; then pass "RouteConfig status Ready=True"; else fail "RouteConfig status Ready: got '$status'"; fi
  if grep -qF "$token" "$work/route.err" "$work/route.out"; then fail "no token in the logs"; else pass "no token in the logs"; fi
fi

echo "chart: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
