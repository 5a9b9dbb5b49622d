"""The real `route` binary in manifests mode, for the outside scanners: its manifest (a
RouteConfig, the two abcdesktop key Secrets of a vector key set, a TLS Secret), the process on
loopback, a rewrite of the manifest (route polls it and reloads), a token, and the verdict lines.
"""
import base64
import json
import os
import selectors
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = os.path.join(ROOT, "tests/vectors/keys/rsa2048-pkcs8")
NS = "abcdesktop"


def _secret(name, data, kind=None):
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
           "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
    if kind:
        doc["type"] = kind
    return doc


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def manifest(spec, tls=None):
    """YAML documents (JSON is YAML) for `spec`, the vector keys and, when given, a
    (cert PEM, key PEM) TLS Secret that the spec names."""
    docs = []
    for kind, half in (("signing", "public"), ("payload", "private")):
        name = f"abcdesktop_jwt_desktop_{kind}_{half}_key.pem"
        docs.append(_secret(f"abcdesktopjwtdesktop{kind}", {name: _read(os.path.join(KEYS, name))}))
    spec = dict(spec)
    if tls:
        cert, key = tls
        docs.append(_secret("route-tls", {"tls.crt": cert, "tls.key": key}, "kubernetes.io/tls"))
        spec["tls"] = {"secretName": "route-tls"}
    docs.append({"apiVersion": "route.abcdesktop.io/v1alpha1", "kind": "RouteConfig",
                 "metadata": {"name": "route", "namespace": NS}, "spec": spec})
    return "---\n".join(json.dumps(d) + "\n" for d in docs)


class Route:
    """`route serve --manifests` on 127.0.0.1 (port 0: the ports come from its listening lines)."""

    def __init__(self, binary, workdir, spec, tls=None):
        self.binary, self.spec = binary, spec
        self.path = os.path.join(workdir, "route.yaml")
        self.write(spec, tls)
        args = [binary, "serve", "--manifests", self.path, "--listen", "127.0.0.1:0", "--log-format", "json"]
        if tls:
            args += ["--tls-listen", "127.0.0.1:0"]
        self.log_path = os.path.join(workdir, "route.log")
        self.log = open(self.log_path, "wb")
        # Unbuffered: a buffered readline could take both listening lines while select() waits.
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, bufsize=0)
        self.addr = {}
        want = 2 if tls else 1
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while len(self.addr) < want:
            if time.monotonic() > deadline or not sel.select(deadline - time.monotonic()):
                self.stop()
                raise RuntimeError(f"route printed no listening lines within 30 s:\n{self.log_tail()}")
            line = self.proc.stdout.readline().decode()
            if not line:
                self.stop()
                raise RuntimeError(f"route exited ({self.proc.returncode}):\n{self.log_tail()}")
            words = line.split()
            if words[:1] == ["listening"]:
                self.addr[words[1]] = words[2]

    def log_tail(self):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-20:])

    def write(self, spec, tls=None):
        """Replaces the manifest at once (a rename), as a configuration tool would."""
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            f.write(manifest(spec, tls))
        os.replace(tmp, self.path)

    def token(self, target="127.0.0.1"):
        out = subprocess.run([self.binary, "token", "--keys", KEYS, "--target", target],
                             check=True, capture_output=True, text=True).stdout
        return out.strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Verdicts:
    """The `ok`/`FAIL` line of each check, and the closing `N passed, N failed`."""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, what, cond, detail=""):
        print(f"{'ok  ' if cond else 'FAIL'} {what}" + (f"\n     {detail}" if detail and not cond else ""),
              flush=True)
        if cond:
            self.passed += 1
        else:
            self.failed += 1
        return cond

    def close(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0
