"""What the outside checks share: the real `route` binary with keys and a manifest, processes
that are always reaped, free loopback ports, and the pass/fail tally each script ends with."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "target" / "outside"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Procs:
    """Child processes started in their own process group, killed (group and all) on exit."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv, stdout=kw.pop("stdout", log), stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True, **kw,
        )
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> "Procs":
        # run-ws's timeout sends SIGTERM: unwind, so that the children are killed on the way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
        return self

    def __exit__(self, *exc) -> None:
        for proc in reversed(self.started):
            try:
                self.stop(proc)
            except ProcessLookupError:
                pass


class Route:
    """`route serve --manifests` on a loopback port, with a key set made by `route keys`."""

    def __init__(self, binary: Path, procs: Procs, workdir: Path):
        self.binary = binary
        self.procs = procs
        self.workdir = workdir
        self.keys = workdir / "keys"
        subprocess.run([binary, "keys", "--out", self.keys, "--bits", "2048"], check=True,
                       capture_output=True)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def token(self, target: str = "127.0.0.1", keys: Path | None = None, exp: int | None = None) -> str:
        argv = [self.binary, "token", "--keys", keys or self.keys, "--target", target,
                "--lifetime", "3600"]
        if exp is not None:
            argv += ["--exp", str(exp)]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def other_keys(self) -> Path:
        """A second key set: tokens it signs are forged as far as this route is concerned."""
        other = self.workdir / "other-keys"
        if not other.exists():
            subprocess.run([self.binary, "keys", "--out", other, "--bits", "2048"], check=True,
                           capture_output=True)
        return other

    def serve(self, ports: dict[str, int], services: dict[str, int]) -> None:
        """Writes the two abcdesktop key Secrets and a RouteConfig whose desktop `ports` and
        fixed `services` are the given loopback ports (the rest point at a closed port), then
        starts route and waits for its `listening http ADDR` line."""
        closed = free_port()
        svc = {n: {"host": "127.0.0.1", "port": services.get(n, closed)}
               for n in ("pyos", "website", "console", "speedtest")}
        pem = lambda name: (self.keys / name).read_text()
        docs = [
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "abcdesktopjwtdesktopsigning", "namespace": "abcdesktop"},
             "stringData": {"abcdesktop_jwt_desktop_signing_public_key.pem":
                            pem("abcdesktop_jwt_desktop_signing_public_key.pem")}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "abcdesktopjwtdesktoppayload", "namespace": "abcdesktop"},
             "stringData": {"abcdesktop_jwt_desktop_payload_private_key.pem":
                            pem("abcdesktop_jwt_desktop_payload_private_key.pem")}},
            {"apiVersion": "route.abcdesktop.io/v1alpha1", "kind": "RouteConfig",
             "metadata": {"name": "route", "namespace": "abcdesktop"},
             "spec": {"services": svc, "ports": ports, "nodeName": "node-outside"}},
        ]
        manifest = self.workdir / "route.yaml"
        # JSON is YAML: one document per `---`.
        manifest.write_text("".join(f"---\n{json.dumps(d)}\n" for d in docs))
        self.proc = self.procs.start(
            "route",
            [self.binary, "serve", "--manifests", manifest, "--listen", "127.0.0.1:0",
             "--log-format", "json"],
            stdout=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1", "RUST_LOG": "info"},
        )
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening http "):
            raise RuntimeError(f"route did not start: {line!r}; see {self.procs.logdir}/route.log")
        self.port = int(line.rsplit(":", 1)[1])

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in (self.procs.logdir / "route.log").read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                pass
        return lines


class Tally:
    """Each check prints one `PASS`/`FAIL` line; the script ends with `NAME: N passed, N failed`."""

    def __init__(self, name: str):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, what: str, ok: bool, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {self.name}: {what}" + (f" ({detail})" if detail else ""),
              flush=True)
        return ok

    def count(self, what: str, passed: int, failed: int) -> None:
        """Many checks at once (one per case of a suite), summed up on one line."""
        self.passed += passed
        self.failed += failed
        print(f"{'PASS' if not failed else 'FAIL'} {self.name}: {what}: {passed} of "
              f"{passed + failed}", flush=True)

    def finish(self) -> int:
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed or not self.passed else 0


def route_binary() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1]).resolve()
    for profile in ("release", "debug"):
        candidate = REPO / "target" / profile / "route"
        if candidate.exists():
            return candidate
    raise SystemExit("no target/{release,debug}/route: build it first (or pass its path)")


def workdir(name: str) -> Path:
    """A fresh folder for one run's keys, manifest and logs; earlier runs' are removed."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob(f"{name}-*"):
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=OUT))
