#!/usr/bin/env python3
"""HTTP from outside: REDbot (PyPI `redbot`) on route's own answers and on proxied responses.

usage: redbot_check.py ROUTE_BINARY

route runs in manifests mode; a desktop is Debian's nginx on loopback serving a few static
files (ETag, Last-Modified, ranges, gzip), reached through `/container/<JWT>/<port>/`.

- route's own answers (/healthz, /readyz, /node, /metrics, the 401 of a missing or forged
  token, the 502 of a desktop that does not answer, the 404 of an unknown ACME challenge): no
  note REDbot rates bad or warning, and none storable by a cache (`Cache-Control: no-store`: a
  cache in front would answer a stale health, readiness, node name or metrics);
- proxied responses: REDbot rates them through route as it rates them straight from nginx (no
  bad or warning note that the direct response lacks), conditional requests, ranges and gzip
  still work through route, and route's `X-Frame-Options` is there.

Ends with `N passed, N failed`.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from configparser import ConfigParser

import thor
from httplint.note import levels
from redbot.resource import HttpResource

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from routeproc import Route, Verdicts  # noqa: E402

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    types {{ text/html html; text/css css; text/plain txt; }}
    gzip on;
    gzip_vary on;
    gzip_min_length 1;
    gzip_types text/css text/plain;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {tmp}/www;
        location = /app.css {{ add_header Cache-Control "public, max-age=3600"; }}
    }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def nginx(work):
    """Debian's nginx serving {work}/www on a free loopback port, as a desktop's web server."""
    www = os.path.join(work, "www")
    os.makedirs(www)
    with open(f"{www}/index.html", "w") as f:
        f.write("<!doctype html><html><head><title>desktop</title><link rel=stylesheet href=app.css>"
                "</head><body>" + "<p>a desktop page</p>" * 50 + "</body></html>\n")
    with open(f"{www}/app.css", "w") as f:
        f.write("body { background: #123456; }\n" * 100)
    with open(f"{www}/notes.txt", "w") as f:
        f.write("line of text\n" * 500)
    # nginx's workers run as nobody when started by root: they need to read the files.
    for path in (work, www):
        os.chmod(path, 0o755)
    port = free_port()
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=work, port=port))
    proc = subprocess.Popen(["nginx", "-p", work, "-c", conf], stderr=subprocess.DEVNULL)
    wait_port(port, proc, "nginx")
    return proc, port


def lint_all(requests):
    """REDbot on each (url, headers), all at once on one event loop (thor's loop cannot be
    restarted cleanly between runs). Returns the HttpResources, in order."""
    parser = ConfigParser()
    parser.read_dict({"redbot": {"enable_local_access": "True"}})
    config = parser["redbot"]
    pending = []
    resources = []
    for url, headers in requests:
        res = HttpResource(config)
        res.set_request(url, headers=headers)
        resources.append(res)
        pending.append(res)

        @thor.events.on(res)
        def check_done(res=res):
            pending.remove(res)
            if not pending:
                thor.stop()

    thor.schedule(120, thor.stop)
    for res in resources:
        res.check()
    thor.run()
    return resources


def notes(res, *wanted):
    return [n for n in res.response.notes if n.level in wanted]


def describe(ns):
    return "; ".join(f"{type(n).__name__} ({n.level.value}): {n}" for n in ns)


def main():
    binary = sys.argv[1]
    check = Verdicts()
    if not check("nginx installed (the desktop)", shutil.which("nginx") is not None):
        return check.close()
    with tempfile.TemporaryDirectory() as work:
        ngx, port = nginx(work)
        route = Route(binary, work, {"nodeName": "node-scan"})
        try:
            base = f"http://{route.addr['http']}"
            token = route.token()
            forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            own = {
                "/healthz": f"{base}/healthz",
                "/readyz": f"{base}/readyz",
                "/node": f"{base}/node",
                "/metrics": f"{base}/metrics",
                "401 without a token": f"{base}/spawner/x",
                "401 of a forged token": f"{base}/container/{forged}/{port}/index.html",
                "502 of a desktop that does not answer": f"{base}/container/{token}/{free_port()}/x",
                "404 of an unknown ACME challenge": f"{base}/.well-known/acme-challenge/abc",
            }
            files = ("index.html", "app.css", "notes.txt")
            proxied = {f: (f"http://127.0.0.1:{port}/{f}", f"{base}/container/{token}/{port}/{f}") for f in files}
            urls = list(own.values()) + [u for pair in proxied.values() for u in pair]
            results = dict(zip(urls, lint_all([(u, []) for u in urls])))

            for what, url in own.items():
                res = results[url]
                if not check(f"REDbot got route's {what}", res.response.complete and res.fetch_error is None,
                             str(res.fetch_error)):
                    continue
                status = res.response.status_code
                bad = notes(res, levels.BAD, levels.WARN)
                check(f"{what} ({status}): no bad or warning note", not bad, describe(bad))
                kinds = {type(n).__name__ for n in res.response.notes}
                check(f"{what} ({status}): no cache may store it (no-store)", "STORE_NO_STORE" in kinds,
                      describe(n for n in res.response.notes if n.category.name == "CACHING"))

            for name, (direct_url, via_url) in proxied.items():
                direct, via = results[direct_url], results[via_url]
                if not check(f"REDbot got {name} from nginx and through route",
                             direct.response.complete and via.response.complete and via.response.status_code == 200,
                             f"{direct.fetch_error} / {via.fetch_error} {via.response.status_code}"):
                    continue
                before = {type(n).__name__ for n in notes(direct, levels.BAD, levels.WARN)}
                added = [n for n in notes(via, levels.BAD, levels.WARN) if type(n).__name__ not in before]
                check(f"{name} through route: no bad or warning note nginx's own answer lacks", not added,
                      describe(added))
                support = ("inm_support", "ims_support", "partial_support", "gzip_support")
                same = {k: (getattr(direct, k), getattr(via, k)) for k in support}
                check(f"{name} through route: ETag and Last-Modified revalidation, ranges and gzip as from nginx",
                      all(d == v for d, v in same.values()) and all(d for d, _ in same.values()),
                      f"(nginx, route): {same}")
                kinds = {type(n).__name__ for n in via.response.notes}
                check(f"{name} through route: X-Frame-Options SAMEORIGIN", "FRAME_OPTIONS_SAMEORIGIN" in kinds)
            check("route kept running", route.proc.poll() is None)
        finally:
            route.stop()
            ngx.terminate()
            ngx.wait()
    return check.close()


if __name__ == "__main__":
    sys.exit(main())
