#!/usr/bin/env python3
"""TLS from outside: sslyze and testssl.sh against route's HTTPS listener.

usage: tls.py ROUTE_BINARY [--no-testssl]

route runs in manifests mode with `--tls-listen`, its certificate in the RouteConfig's `tls`
Secret (RSA 2048, signed by a CA made here). sslyze checks: TLS 1.2 and 1.3 only, every
accepted TLS 1.2 suite ECDHE with an AEAD cipher, no compression (CRIME), Heartbleed, CCS
injection, ROBOT, client renegotiation, 0-RTT early data, Mozilla's "intermediate" profile, and
the certificate served. testssl.sh (Debian's) runs its protocol, cipher-class and vulnerability
checks once: no finding above INFO. Then the manifest's Secret is rewritten with an ECDSA
certificate; once route serves it, sslyze scans again and must see the new certificate. Last, a
control: the same checks on `openssl s_server` offering TLS 1.1 and CBC suites must fail, so a
scanner that stopped seeing them would not pass route by default. Ends with `N passed, N failed`.
"""
import base64
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from cryptography import x509

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from routeproc import Route, Verdicts  # noqa: E402

BIN = os.path.dirname(sys.executable)
AEAD_ECDHE = re.compile(r"^TLS_ECDHE_(RSA|ECDSA)_WITH_(AES_(128_GCM_SHA256|256_GCM_SHA384)|CHACHA20_POLY1305_SHA256)$")
OLD = ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(work):
    """A CA, and two server certificates for localhost/127.0.0.1 it signs: RSA and ECDSA."""
    ca_key, ca = f"{work}/ca.key", f"{work}/ca.crt"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "30", "-subj", "/CN=route scan CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = f"{work}/ext.cnf"
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    certs = {}
    for name, newkey in (("rsa", ["-newkey", "rsa:2048"]),
                         ("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])):
        key, csr, crt = f"{work}/{name}.key", f"{work}/{name}.csr", f"{work}/{name}.crt"
        openssl("req", "-new", *newkey, "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
        openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                "-days", "30", "-sha256", "-extfile", ext, "-out", crt)
        with open(crt, "rb") as f:
            pem = f.read()
        with open(key, "rb") as f:
            key_pem = f.read()
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        certs[name] = (pem, key_pem, hashlib.sha256(der).digest(), x509.load_pem_x509_certificate(pem).serial_number)
    return ca, certs


def sslyze(work, port, ca, tag):
    """Runs sslyze; returns (its scan result, whether it found the Mozilla intermediate profile
    met, its console output)."""
    out = f"{work}/sslyze-{tag}.json"
    run = subprocess.run([f"{BIN}/sslyze", f"--json_out={out}", f"--certinfo_ca_file={ca}", "--early_data",
                          "--mozilla_config=intermediate", f"localhost:{port}{{127.0.0.1}}"],
                         capture_output=True, text=True, timeout=300)
    with open(out) as f:
        (server,) = json.load(f)["server_scan_results"]
    return server, run.returncode == 0, run.stdout


def judge(check, server, compliant, console, who):
    """The sslyze verdicts a router's HTTPS listener must get."""
    if not check(f"{who}: sslyze connected and scanned", server["scan_status"] == "COMPLETED",
                 server.get("connectivity_error_trace") or ""):
        return None
    r = server["scan_result"]

    def res(name):
        return r[name]["result"] or {}

    supported = {v: res(f"{v}_cipher_suites").get("is_tls_version_supported") for v in OLD + ("tls_1_2", "tls_1_3")}
    check(f"{who}: SSL 2, SSL 3, TLS 1.0, TLS 1.1 refused", not any(supported[v] for v in OLD),
          f"supported: {sorted(v for v in OLD if supported[v])}")
    check(f"{who}: TLS 1.2 and TLS 1.3 offered", supported["tls_1_2"] and supported["tls_1_3"], str(supported))
    weak = [s["cipher_suite"]["name"] for v in OLD + ("tls_1_2",)
            for s in res(f"{v}_cipher_suites").get("accepted_cipher_suites", [])
            if not AEAD_ECDHE.match(s["cipher_suite"]["name"])]
    check(f"{who}: no weak cipher class (every TLS 1.2 suite ECDHE + AES-GCM or ChaCha20-Poly1305)",
          not weak, f"accepted: {weak}")
    check(f"{who}: no TLS compression (CRIME)", res("tls_compression").get("supports_compression") is False)
    check(f"{who}: not vulnerable to Heartbleed", res("heartbleed").get("is_vulnerable_to_heartbleed") is False)
    check(f"{who}: not vulnerable to CCS injection",
          res("openssl_ccs_injection").get("is_vulnerable_to_ccs_injection") is False)
    robot = res("robot").get("robot_result")
    check(f"{who}: not vulnerable to ROBOT", robot in ("NOT_VULNERABLE_NO_ORACLE", "NOT_VULNERABLE_RSA_NOT_SUPPORTED"),
          str(robot))
    reneg = res("session_renegotiation")
    check(f"{who}: no client-initiated renegotiation (DoS)", reneg.get("is_vulnerable_to_client_renegotiation_dos") is False)
    check(f"{who}: no 0-RTT early data (replayable requests)", res("tls_1_3_early_data").get("supports_early_data") is False)
    issues = console[max(console.upper().rfind("COMPLIANCE AGAINST TLS CONFIGURATION"), 0):]
    check(f"{who}: Mozilla's intermediate TLS profile", compliant,
          "\n     ".join(line.strip() for line in issues.splitlines() if line.strip().startswith("*")))
    leaf = res("certificate_info")["certificate_deployments"][0]["received_certificate_chain"][0]
    return base64.b64decode(leaf["fingerprint_sha256"]), int(leaf["serial_number"])


def served_fingerprint(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).digest()


def testssl(work, port, check):
    """Debian's testssl.sh: protocols, cipher classes, vulnerabilities; every finding at most INFO."""
    exe = shutil.which("testssl") or shutil.which("testssl.sh")
    if not check("testssl.sh installed", exe is not None):
        return
    out = f"{work}/testssl.json"
    subprocess.run([exe, "--quiet", "--color", "0", "--warnings", "off", "--jsonfile", out,
                    "--protocols", "--std", "--vulnerable", "--ip", "127.0.0.1", f"localhost:{port}"],
                   capture_output=True, text=True, timeout=600)
    with open(out) as f:
        findings = json.load(f)
    ids = {f["id"] for f in findings}
    # Enough of what it checks to know that it ran against the server, not just started.
    ran = {"TLS1_1", "TLS1_2", "TLS1_3", "cipherlist_3DES_IDEA", "heartbleed", "ROBOT", "CRIME_TLS", "BREACH",
           "POODLE_SSL", "SWEET32", "FREAK", "LOGJAM", "BEAST", "LUCKY13", "RC4"}
    check("testssl.sh ran its protocol, cipher and vulnerability checks", ran <= ids, f"missing: {sorted(ran - ids)}")
    bad = [f"{f['id']} {f['severity']}: {f['finding']}" for f in findings
           if f["severity"] not in ("OK", "INFO") and f["id"] not in ("scanTime",)]
    check(f"testssl.sh: {len(findings)} findings, none above INFO", not bad, "\n     ".join(bad))
    for f in findings:
        if f["id"] in ("TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "heartbleed", "ROBOT", "CRIME_TLS", "LUCKY13"):
            print(f"     testssl {f['id']}: {f['finding']}")


def control(work, ca, certs, check):
    """openssl s_server with TLS 1.1 and CBC suites: the sslyze checks above must fail on it."""
    cert, key = f"{work}/rsa.crt", f"{work}/rsa.key"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", cert, "-key", key,
                             "-tls1_1", "-cipher", "ALL:@SECLEVEL=0", "-www", "-quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        server, compliant, console = sslyze(work, port, ca, "control")
        seen = Verdicts()
        with contextlib.redirect_stdout(io.StringIO()):
            judge(seen, server, compliant, console, "control")
        check(f"control: the checks fail on openssl s_server offering TLS 1.1 and CBC ({seen.failed} failed)",
              seen.failed >= 3)
    finally:
        proc.terminate()
        proc.wait()


def main():
    binary = sys.argv[1]
    check = Verdicts()
    with tempfile.TemporaryDirectory() as work:
        ca, certs = make_certs(work)
        rsa, ecdsa = certs["rsa"], certs["ecdsa"]
        started = time.monotonic()
        route = Route(binary, work, {}, tls=rsa[:2])
        try:
            port = int(route.addr["https"].rsplit(":", 1)[1])
            seen = judge(check, *sslyze(work, port, ca, "rsa"), "RSA certificate")
            check("sslyze saw the RSA certificate of the Secret (fingerprint and serial)", seen == rsa[2:])
            if "--no-testssl" not in sys.argv:
                testssl(work, port, check)
            # The rotation: the Secret rewritten in the manifest, the listener still up.
            route.write({}, tls=ecdsa[:2])
            deadline = time.monotonic() + 10
            while served_fingerprint(port, ca) != ecdsa[2] and time.monotonic() < deadline:
                time.sleep(0.1)
            seen = judge(check, *sslyze(work, port, ca, "ecdsa"), "after rotation to ECDSA")
            check("sslyze saw the new certificate after the rotation (fingerprint and serial)",
                  seen == ecdsa[2:], f"saw {seen and (seen[0].hex(), seen[1])}, want {(ecdsa[2].hex(), ecdsa[3])}")
            check("route kept running through the scans", route.proc.poll() is None)
        finally:
            route.stop()
        print(f"     route scanned in {time.monotonic() - started:.0f} s")
        control(work, ca, certs, check)
    return check.close()


if __name__ == "__main__":
    sys.exit(main())
