#!/usr/bin/env bash
# The chart as outside scanners see it: every rendering (the default values and each
# charts/route/ci/*.yaml) through checkov (zero failed checks; the findings the chart keeps on
# purpose are skipped in the Deployment's annotations, with the reason) and through
# kubernetes-validate --strict against the oldest Kubernetes the chart supports (Chart.yaml's
# kubeVersion; 1.30 for a rendering with a preStop `sleep`, which needs it) and the newest whose
# schemas the tool ships. Needs helm on PATH (.ci/run installs it). Ends with `N passed, N failed`.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/outside/lib.sh
CHART=charts/route
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v helm >/dev/null || PATH="$HOME/.cache/route-ci/bin:$PATH"
command -v helm >/dev/null || { echo "FAIL helm missing (run .ci/run once, or put helm on PATH)"; exit 1; }
scanners_venv || { echo "FAIL installing the scanners"; exit 1; }
bin=$SCANNERS_VENV/bin

mkdir -p "$work/rendered"
values=("")
for f in "$CHART"/ci/*.yaml; do values+=("$f"); done
for v in "${values[@]}"; do
  name=$(basename "${v:-default}" .yaml)
  helm template route "$CHART" -n abcdesktop ${v:+-f "$v"} >"$work/rendered/$name.yaml" ||
    fail "helm template ($name)"
done

# checkov: one run over every rendering (its start-up dominates), the verdict per rendering.
BC_SKIP_MAPPING=TRUE "$bin/checkov" --skip-download --framework kubernetes -d "$work/rendered" \
  -o json >"$work/checkov.json" 2>"$work/checkov.err"
"$bin/python" - "$work/checkov.json" "$work/rendered"/*.yaml >"$work/checkov.out" <<'PY' || true
import json, os, sys
report = json.load(open(sys.argv[1]))
report = report[0] if isinstance(report, list) else report
res, summary = report["results"], report["summary"]
for path in sys.argv[2:]:
    name = os.path.basename(path)
    of = lambda kind: [c for c in res.get(kind, []) if os.path.basename(c["file_path"]) == name]
    failed, passed, skipped = of("failed_checks"), of("passed_checks"), of("skipped_checks")
    ok = not failed and passed
    print(f"{'ok  ' if ok else 'FAIL'} checkov {name[:-5]}: {len(passed)} passed, {len(failed)} failed, "
          f"{len(skipped)} skipped ({', '.join(sorted({c['check_id'] for c in skipped})) or 'none'})")
    for c in failed:
        print(f"     {c['check_id']} {c['check_name']}: {c['resource']}")
if summary.get("parsing_errors"):
    print(f"FAIL checkov could not parse {summary['parsing_errors']} files")
PY
cat "$work/checkov.out"
passed=$((passed + $(grep -c '^ok' "$work/checkov.out")))
failed=$((failed + $(grep -c '^FAIL' "$work/checkov.out")))
[ -s "$work/checkov.out" ] || { fail "checkov gave no report"; sed 's/^/     /' "$work/checkov.err"; }

floor=$(sed -n 's/^kubeVersion: *"*>=\([0-9][0-9.]*\).*/\1/p' "$CHART/Chart.yaml")
newest=$(ls "$("$bin/python" -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')/kubernetes-json-schema" |
  sed -n 's/^v\([0-9.]*\)-local-strict$/\1/p' | sort -V | tail -n 1)
for f in "$work/rendered"/*.yaml; do
  name=$(basename "$f" .yaml)
  oldest=$floor
  grep -q '^ *sleep:$' "$f" && oldest=1.30.0
  for k in "$oldest" "$newest"; do
    if "$bin/kubernetes-validate" --strict --quiet --no-warn -k "$k" "$f" >"$work/kv" 2>&1; then
      pass "kubernetes-validate --strict $name (Kubernetes $k)"
    else
      fail "kubernetes-validate --strict $name (Kubernetes $k)"; sed 's/^/     /' "$work/kv"
    fi
  done
done
verdict
