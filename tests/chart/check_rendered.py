#!/usr/bin/env python3
"""Assertions on the manifests `helm template` rendered from charts/route (one values file).

usage: check_rendered.py RENDERED.yaml VALUES_NAME
Prints one `ok`/`FAIL` line per check; exits 1 when any failed.
"""
import sys

import yaml

from checks import Checks

path, name = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
check = Checks(name)


def one(kind):
    items = by_kind.get(kind, [])
    return items[0] if len(items) == 1 else None


# Nothing cluster-wide: the CRD lives in crds/, not in templates.
cluster = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace",
           "PriorityClass", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
check("no cluster-scoped objects", not (cluster & by_kind.keys()))
check("every object is namespaced in the release namespace",
      all(d["metadata"].get("namespace") == "abcdesktop" for d in docs))

dep = one("Deployment")
check("one Deployment", dep is not None)
pod = dep["spec"]["template"]["spec"]
(c,) = pod["containers"]
psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
check("pod runs as non-root", psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True)
check("fixed non-root UID", isinstance(csc.get("runAsUser"), int) and csc["runAsUser"] > 0)
check("read-only root filesystem", csc.get("readOnlyRootFilesystem") is True)
check("no privilege escalation", csc.get("allowPrivilegeEscalation") is False)
check("all capabilities dropped, none added",
      csc.get("capabilities", {}).get("drop") == ["ALL"] and not csc["capabilities"].get("add"))
check("seccomp RuntimeDefault", csc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
      and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault")
check("not privileged", not csc.get("privileged"))
check("no hostNetwork/hostPID/hostIPC", not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")))
check("no hostPath volumes", not any("hostPath" in v for v in pod.get("volumes", [])))
check("runs `serve --kube`", c["args"][:2] == ["serve", "--kube"])
check("resources set", bool(c.get("resources", {}).get("requests")))
check("liveness /healthz", c["livenessProbe"]["httpGet"]["path"] == "/healthz")
check("readiness /readyz on the admin port", c["readinessProbe"]["httpGet"]["path"] == "/readyz"
      and c["readinessProbe"]["httpGet"]["port"] == "admin")
cports = {p["name"]: p["containerPort"] for p in c["ports"]}
check("the admin listener on its own container port",
      "admin" in cports and cports["admin"] != cports["http"]
      and f"--admin-listen=0.0.0.0:{cports['admin']}" in c["args"])
env = {e["name"]: e for e in c["env"]}
check("NODE_NAME from the downward API",
      env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName")
check("POD_NAMESPACE from the downward API",
      env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace")
check("POD_NAME from the downward API (the Events reporter instance)",
      env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name")
check("ROUTE_CONFIG_NAME set", bool(env.get("ROUTE_CONFIG_NAME", {}).get("value")))
config_name = env["ROUTE_CONFIG_NAME"]["value"]
check("checksum annotation", "checksum/config" in dep["spec"]["template"]["metadata"].get("annotations", {}))
check("no service links (PYOS_* of a Service named pyos)", pod.get("enableServiceLinks") is False)
# The API token: not automounted; the route container mounts a projected bound token itself.
token_volumes = {v["name"] for v in pod.get("volumes", [])
                 if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))}
token_mounts = [m for m in c.get("volumeMounts", []) if m["name"] in token_volumes]
check("API token not automounted (pod and ServiceAccount)", pod.get("automountServiceAccountToken") is False
      and all(sa.get("automountServiceAccountToken") is False for sa in by_kind.get("ServiceAccount", [])))
check("the route container mounts a projected API token read-only where kube-rs reads it",
      len(token_mounts) == 1 and token_mounts[0].get("readOnly") is True
      and token_mounts[0]["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
digest = c["image"].partition("@")[2]
check("image by digest with IfNotPresent, by tag with Always",
      c.get("imagePullPolicy") == ("IfNotPresent" if digest.startswith("sha256:") else "Always"))
skips = {k: v for k, v in dep["metadata"].get("annotations", {}).items() if k.startswith("checkov.io/skip")}
check("each checkov skip names a check and says why",
      all(len(v.partition("=")[2]) > 20 and v.startswith("CKV") for v in skips.values()))
check("no digest skip when the image has a digest",
      not (digest and any(v.startswith("CKV_K8S_43=") for v in skips.values())))

rc = one("RouteConfig")
drain = 30
if rc is not None:
    check("RouteConfig named as ROUTE_CONFIG_NAME", rc["metadata"]["name"] == config_name)
    drain = rc["spec"].get("limits", {}).get("drainSeconds", 30)
if rc is not None:
    check("terminationGracePeriodSeconds > drain deadline", pod["terminationGracePeriodSeconds"] > drain)
else:
    # The RouteConfig is elsewhere: the grace period must be the explicit value, not a guess.
    check("terminationGracePeriodSeconds as set (75)", pod["terminationGracePeriodSeconds"] == 75)

role = one("Role")
check("one Role", role is not None)
secret_rules = [r for r in role["rules"] if "secrets" in r["resources"]]
check("Secret access only by resourceNames",
      bool(secret_rules) and all(r.get("resourceNames") for r in secret_rules))
check("Secret access read-only", all(set(r["verbs"]) <= {"get", "list", "watch"} for r in secret_rules))
key_names = set()
if rc is not None:
    keys = rc["spec"]["keys"]
    key_names = {keys["signing"]["secretName"], keys["payload"]["secretName"]}
    if rc["spec"].get("tls"):
        key_names.add(rc["spec"]["tls"]["secretName"])
    check("Role names exactly the Secrets the RouteConfig names",
          set(n for r in secret_rules for n in r["resourceNames"]) == key_names)
rc_rules = [r for r in role["rules"] if any(x.startswith("routeconfigs") for x in r["resources"])]
check("RouteConfig access limited to its name",
      all(r.get("resourceNames") == [config_name] for r in rc_rules))
check("no write to the RouteConfig spec",
      all(not (set(r["verbs"]) & {"patch", "update", "create", "delete"}) for r in rc_rules
          if r["resources"] == ["routeconfigs"]))
check("no wildcard verbs or resources",
      all("*" not in r["verbs"] and "*" not in r["resources"] for r in role["rules"]))
other = [r for r in role["rules"] if r not in secret_rules and r not in rc_rules]
check("everything else is creating/patching Events",
      all(r["resources"] == ["events"] and set(r["verbs"]) <= {"create", "patch"} for r in other))
rb = one("RoleBinding")
check("RoleBinding binds the Role to the pod's ServiceAccount",
      rb["roleRef"]["name"] == role["metadata"]["name"]
      and rb["subjects"][0]["name"] == pod["serviceAccountName"])

services = by_kind.get("Service", [])
admin_services = [s for s in services if s["metadata"]["name"].endswith("-admin")]
(svc,) = [s for s in services if s not in admin_services]
ports = {p["name"]: p for p in svc["spec"]["ports"]}
check("the public Service has no admin port", "admin" not in ports
      and all(p["targetPort"] != "admin" for p in ports.values()))
for admin_svc in admin_services:
    check("the admin Service is ClusterIP, admin port only", admin_svc["spec"]["type"] == "ClusterIP"
          and [p["targetPort"] for p in admin_svc["spec"]["ports"]] == ["admin"])
check("Service http -> http", ports["http"]["targetPort"] == "http")
tls_on = "--tls-listen" in " ".join(c["args"])
if tls_on:
    check("Service https -> https", ports.get("https", {}).get("targetPort") == "https")
else:
    check("no https port without TLS", "https" not in ports)
labels = dep["spec"]["template"]["metadata"]["labels"]
check("pod labels keep the selector", all(labels.get(k) == v
      for k, v in dep["spec"]["selector"]["matchLabels"].items()))

# What each values file is for. `name` is the values file's path, or "default".
base = name.rsplit("/", 1)[-1]
abcdesktop_labels = {"netpol/dns", "netpol/api", "netpol/pyos", "netpol/ocuser", "netpol/nginx",
                     "netpol/console", "netpol/speedtest"}


def admits_listeners_from_anywhere(netpol):
    rules = netpol["spec"].get("ingress", [])
    want = {"http", "https"} if tls_on else {"http"}
    return any(not r.get("from") and want <= {p["port"] for p in r.get("ports", [])} for r in rules)


if base == "default":
    check("Service is ClusterIP", svc["spec"]["type"] == "ClusterIP")
    np = one("NetworkPolicy")
    check("a NetworkPolicy admits the listeners from anywhere and leaves egress open",
          np is not None and admits_listeners_from_anywhere(np) and np["spec"]["policyTypes"] == ["Ingress"])
    check("no node ports", not any("nodePort" in p for p in svc["spec"]["ports"]))
    check("no externalTrafficPolicy", "externalTrafficPolicy" not in svc["spec"])
if base in ("abcdesktop-nodeport-values.yaml", "abcdesktop-https-values.yaml"):
    check("http node port 30443, as http-router", ports["http"].get("nodePort") == 30443
          and ports["http"]["port"] == 80)
    check("externalTrafficPolicy Cluster, as http-router (every node answers)",
          svc["spec"].get("externalTrafficPolicy", "Cluster") == "Cluster")
    check("abcdesktop's netpol/* labels on the pods",
          all(labels.get(k) == "true" for k in abcdesktop_labels))
    check("no `run: router-od` (http-router would select the pods)", "run" not in labels)
    np = one("NetworkPolicy")
    check("a NetworkPolicy admits the listeners (router-rights admits 80/443 only)",
          np is not None and admits_listeners_from_anywhere(np))
if base == "abcdesktop-nodeport-values.yaml":
    check("Service is NodePort", svc["spec"]["type"] == "NodePort")
if base == "abcdesktop-https-values.yaml":
    check("https on 443 and node port 30444", ports.get("https", {}).get("port") == 443
          and ports["https"].get("nodePort") == 30444)
    check("TLS from Secret http-router-certificat", rc["spec"].get("tls", {}).get("secretName")
          == "http-router-certificat" and "http-router-certificat" in key_names)
if base == "production-values.yaml":
    selector = dep["spec"]["selector"]["matchLabels"]
    pdb = one("PodDisruptionBudget")
    check("PDB: maxUnavailable 1 over the Deployment's pods", pdb is not None
          and pdb["spec"].get("maxUnavailable") == 1 and "minAvailable" not in pdb["spec"]
          and pdb["spec"]["selector"]["matchLabels"] == selector)
    hpa = one("HorizontalPodAutoscaler")
    check("HPA: the Deployment, 3..12 replicas at 70% CPU", hpa is not None
          and hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": dep["metadata"]["name"]}
          and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
          and hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
          and hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70)
    check("replicas left to the HPA", "replicas" not in dep["spec"])
    np = one("NetworkPolicy")
    check("NetworkPolicy selects the Deployment's pods, Ingress and Egress", np is not None
          and np["spec"]["podSelector"]["matchLabels"] == selector
          and set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"})
    ingress, admin_ingress = np["spec"]["ingress"]

    def namespaces(rule):
        return sorted(p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                      for p in rule.get("from", []))

    check("ingress: the listener from ingress-nginx only",
          [p["port"] for p in ingress["ports"]] == ["http"] and namespaces(ingress) == ["ingress-nginx"])
    check("ingress: the admin port from monitoring only",
          [p["port"] for p in admin_ingress["ports"]] == ["admin"] and namespaces(admin_ingress) == ["monitoring"])
    egress = np["spec"]["egress"]
    check("egress: DNS on 53 UDP and TCP", any(
        {(p["port"], p["protocol"]) for p in r.get("ports", [])} == {(53, "UDP"), (53, "TCP")}
        and not r.get("to") for r in egress))
    api = [r for r in egress if any(p["port"] == 6443 for p in r.get("ports", []))]
    cidrs = [t["ipBlock"]["cidr"] for r in api for t in r.get("to", [])]
    check("egress: the API server's endpoints on 6443, not the 10.96.0.0/12 Service VIPs",
          len(api) == 1 and cidrs and all(c.endswith("/32") and not c.startswith("10.96.") for c in cidrs))
    check("egress: the pod network (desktops, abcdesktop services)",
          any(t.get("ipBlock", {}).get("cidr") == "10.244.0.0/16" for r in egress for t in r.get("to", [])))
    sm = one("ServiceMonitor")
    check("ServiceMonitor: /metrics on the admin port every 30s, the release label",
          sm is not None and sm["spec"]["endpoints"] == [{"port": "admin", "path": "/metrics", "interval": "30s"}]
          and sm["metadata"]["labels"].get("release") == "prometheus")
    selected = [s for s in services
                if all(s["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())]
    check("ServiceMonitor selects the admin Service only",
          len(selected) == 1 and selected[0]["metadata"]["name"].endswith("-admin"))
    check("the NetworkPolicy admits Prometheus on the port the ServiceMonitor scrapes, not the listener",
          sm["spec"]["endpoints"][0]["port"] in [p["port"] for p in admin_ingress["ports"]]
          and "monitoring" not in namespaces(ingress))

print(f"{name}: {len(docs)} objects, {check.failed} failed checks")
sys.exit(1 if check.failed else 0)
