#!/usr/bin/env python3
"""The commands of docs/migration.md, applied offline (`kubectl patch --local`) to a router
shaped like abcdesktop's (tests/chart/abcdesktop-router.yaml) and checked against the chart's
rendering for mode B.

usage: check_migration.py RENDERED_HTTP.yaml RENDERED_HTTPS.yaml
RENDERED_HTTP: the chart as mode B installs it (abcdesktop-nodeport-values.yaml, ClusterIP);
RENDERED_HTTPS: the same with abcdesktop-https-values.yaml.
Prints one `ok`/`FAIL` line per check; exits 1 when any failed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

from checks import Checks

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
guide = open(f"{root}/docs/migration.md").read()
fixture = list(yaml.safe_load_all(open(f"{here}/abcdesktop-router.yaml")))
router = next(d for d in fixture if d["kind"] == "Deployment")
http_router = next(d for d in fixture if d["kind"] == "Service")
check = Checks("migration")


def rendered(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    return next(d for d in docs if d["kind"] == "Deployment")


def patch(obj, patch_text):
    """`kubectl patch --local` (strategic merge, as the guide runs it) of obj; returns (obj, yaml)."""
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/obj.yaml", "w") as f:
            yaml.safe_dump(obj, f)
        with open(f"{tmp}/patch", "w") as f:
            f.write(patch_text)
        out = subprocess.run(["kubectl", "patch", "--local", "-f", f"{tmp}/obj.yaml", "--type", "strategic",
                              "--patch-file", f"{tmp}/patch", "-o", "yaml"],
                             capture_output=True, text=True, env={**os.environ, "KUBECONFIG": os.devnull})
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return None, ""
    return yaml.safe_load(out.stdout), out.stdout


def named_port(container, name):
    return next((p["containerPort"] for p in container.get("ports", []) if p.get("name") == name), None)


heredocs = dict(re.findall(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF\n", guide, re.S))
svc_patches = [json.loads(p) for p in re.findall(r"patch svc http-router -p '(\{.*?\})'", guide)]
check("the guide has the Deployment patch, the NetworkPolicy and four http-router patches",
      {"router-od-route.yaml", "router-rights-route.yaml"} <= heredocs.keys() and len(svc_patches) == 4)
mode_a_svc, mode_b_svc, back_svc, https_svc = svc_patches
chart_http = rendered(sys.argv[1])["spec"]["template"]
chart_https = rendered(sys.argv[2])["spec"]["template"]
route_port = named_port(chart_http["spec"]["containers"][0], "http")

# Mode A.
svc, _ = patch(http_router, json.dumps(mode_a_svc))
check("mode A: http-router targets the port by name (80 on nginx, 8080 on route)",
      svc is not None and svc["spec"]["ports"][0]["targetPort"] == "http"
      and named_port(router["spec"]["template"]["spec"]["containers"][0], "http") == 80)
dep, text = patch(router, heredocs["router-od-route.yaml"])
check("mode A: the Deployment patch applies", dep is not None)
pod = dep["spec"]["template"]["spec"]
(c,) = pod["containers"]
before = router["spec"]["template"]["spec"]["containers"][0]
check("mode A: two container ports, http = route's listener, admin = its admin listener", c["ports"] == [
    {"name": "http", "containerPort": route_port, "protocol": "TCP"},
    {"name": "admin", "containerPort": 9090, "protocol": "TCP"}])
check("mode A: startup and liveness probes on the port named http, readiness on admin",
      all(c.get(p, {}).get("httpGet", {}).get("port") == "http" for p in ("startupProbe", "livenessProbe"))
      and c["readinessProbe"]["httpGet"]["port"] == "admin")
check("mode A: liveness and startup on /healthz, readiness on /readyz, thresholds kept",
      c["livenessProbe"]["httpGet"]["path"] == c["startupProbe"]["httpGet"]["path"] == "/healthz"
      and c["readinessProbe"]["httpGet"]["path"] == "/readyz"
      and c["livenessProbe"]["failureThreshold"] == before["livenessProbe"]["failureThreshold"]
      and c["startupProbe"]["failureThreshold"] == before["startupProbe"]["failureThreshold"])
check("mode A: the guide's grep finds no port 80 left",
      not re.search(r"(containerPort|port): 80$", text, re.M))
check("mode A: `route serve` with the env and key mounts kept",
      c["args"] == ["serve"] and c["env"] == before["env"] and c["volumeMounts"] == before["volumeMounts"]
      and pod["volumes"] == router["spec"]["template"]["spec"]["volumes"])
csc = c.get("securityContext", {})
check("mode A: non-root, read-only root, no escalation, no capabilities",
      pod["securityContext"].get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True
      and csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
      and csc.get("capabilities") == {"drop": ["ALL"]})
check("mode A: the pod labels stay (netpol-default's policies select them)",
      dep["spec"]["template"]["metadata"]["labels"] == router["spec"]["template"]["metadata"]["labels"])
np = yaml.safe_load(heredocs["router-rights-route.yaml"])
check("mode A: the extra NetworkPolicy admits route's port to the router pods",
      np["kind"] == "NetworkPolicy"
      and np["spec"]["podSelector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
      and any(p["port"] == route_port for r in np["spec"]["ingress"] for p in r["ports"]))

# Mode B: http-router re-pointed at the release, and back.
svc, _ = patch(http_router, json.dumps(mode_b_svc))
labels = chart_http["metadata"]["labels"]
check("mode B: http-router selects route's pods only, keeps 30443, targets a port route names",
      svc is not None and svc["spec"]["selector"].items() <= labels.items()
      and "run" not in svc["spec"]["selector"]
      and svc["spec"]["ports"][0]["nodePort"] == 30443
      and named_port(chart_http["spec"]["containers"][0], svc["spec"]["ports"][0]["targetPort"]) == route_port)
check("mode B: route's pods do not carry run: router-od (the old selector)", "run" not in labels)
back, _ = patch(svc, json.dumps(back_svc))
check("mode B: the way back restores the original http-router",
      back is not None and back["spec"]["selector"] == http_router["spec"]["selector"]
      and back["spec"]["ports"][0]["targetPort"] == 80)
lb = json.loads(json.dumps(http_router))
lb["spec"]["type"] = "LoadBalancer"
lb["spec"]["ports"].insert(0, {"protocol": "TCP", "port": 443, "targetPort": 443, "name": "https"})
svc, _ = patch(lb, json.dumps(https_svc))
https_c = chart_https["spec"]["containers"][0]
check("HTTPS: the LoadBalancer's 80 and 443 reach route's http and https ports",
      svc is not None and svc["spec"]["selector"].items() <= chart_https["metadata"]["labels"].items()
      and {p["port"]: named_port(https_c, p["targetPort"]) for p in svc["spec"]["ports"]}
      == {80: route_port, 443: named_port(https_c, "https")} and named_port(https_c, "https"))

print(f"migration: {check.failed} failed checks")
sys.exit(1 if check.failed else 0)
