"""The Autobahn WebSocket cases (PyPI `kosoku`, Autobahn's own case files) run as a client
against an echo server, first directly, then through the real `route` binary by the two ways
abcdesktop opens a WebSocket to a desktop: `/container/<JWT>/<port>/` and
`/websockify?jwt_token=<JWT>`. Every case that passes directly must pass through route.
Reports (kosoku's HTML and JSON) are kept under target/outside/autobahn/.

Usage: autobahn.py [ROUTE_BINARY]"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import OUT, Procs, Route, Tally, free_port, route_binary, wait_port, workdir

HERE = Path(__file__).resolve().parent
KOSOKU = Path(sys.executable).with_name("kosoku")

# Groups 1-7, 9 and 10 whole (framing, pings, reserved bits, opcodes, fragmentation, UTF-8,
# close handling, limits/performance, auto-fragmentation); of the compression groups (216
# cases, 8 minutes) the first case of each permessage-deflate offer variant: 12.1-12.5 and
# 13.1-13.7 at their smallest payload, with 12.1.2 as a second payload size.
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*",
         "12.1.1", "12.1.2", "12.2.1", "12.3.1", "12.4.1", "12.5.1",
         "13.1.1", "13.2.1", "13.3.1", "13.4.1", "13.5.1", "13.6.1", "13.7.1"]


def sort_key(case_id: str) -> list[int]:
    return [int(p) for p in case_id.split(".")]


def run_cases(url: str, outdir: Path) -> dict[str, dict]:
    """kosoku's verdict per case id, read from the index.json its CLI writes."""
    argv = [str(KOSOKU), url, "-p", "2", "-o", str(outdir)]
    for case in CASES:
        argv += ["-i", case]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True)
    index = outdir / "index.json"
    if not index.exists():
        raise RuntimeError(f"kosoku wrote no report (exit {proc.returncode}): {proc.stderr[-2000:]}")
    (agent_cases,) = json.loads(index.read_text()).values()
    print(f"  kosoku ran {len(agent_cases)} cases in {time.monotonic() - started:.1f} s, "
          f"report {outdir}/index.html", flush=True)
    return agent_cases


def verdict(case: dict) -> str:
    return f"{case['behavior']}/{case['behaviorClose']}"


PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def passes(case: dict) -> bool:
    return case["behavior"] in PASSING and case["behaviorClose"] in PASSING


def main() -> int:
    binary = route_binary()
    tally = Tally("autobahn")
    work = workdir("autobahn")
    reports = OUT / "autobahn"
    shutil.rmtree(reports, ignore_errors=True)
    with Procs(work) as procs:
        echo_port = free_port()
        procs.start("echo", [sys.executable, str(HERE / "echo.py"), str(echo_port)])
        wait_port(echo_port)
        route = Route(binary, procs, work)
        route.serve(ports={"websockify": echo_port}, services={})
        token = route.token()

        print(f"autobahn: direct against the echo on 127.0.0.1:{echo_port}", flush=True)
        direct = run_cases(f"ws://127.0.0.1:{echo_port}/", reports / "direct")
        baseline = sorted((c for c in direct if passes(direct[c])), key=sort_key)
        failing = sorted((c for c in direct if not passes(direct[c])), key=sort_key)
        print(f"  {len(baseline)} pass directly; not compared (fail against the echo itself): "
              f"{', '.join(failing) or 'none'}", flush=True)
        tally.check("the echo passes the cases run directly (sanity)",
                    len(baseline) >= 0.95 * len(direct) and len(direct) > 300,
                    f"{len(baseline)} of {len(direct)}")

        ways = {
            "container": f"ws://127.0.0.1:{route.port}/container/{token}/{echo_port}/",
            "websockify": f"ws://127.0.0.1:{route.port}/websockify?jwt_token={token}",
        }
        for name, url in ways.items():
            print(f"autobahn: through route /{name}", flush=True)
            got = run_cases(url, reports / name)
            # A case may pass with another passing verdict (OK, NON-STRICT: how soon the echo
            # failed a bad frame depends on how TCP cut the bytes): said, not counted.
            lost = [c for c in baseline if c not in got or not passes(got[c])]
            for c in baseline:
                if c in got and c not in lost and verdict(got[c]) != verdict(direct[c]):
                    print(f"  case {c}: direct {verdict(direct[c])}, through /{name} "
                          f"{verdict(got[c])} (both pass)", flush=True)
            for c in lost:
                print(f"  case {c}: direct {verdict(direct[c])}, through /{name} "
                      f"{verdict(got[c]) if c in got else 'not run'}", flush=True)
            # Each compared case counts as one check.
            tally.count(f"cases passing directly that pass through /{name}",
                        len(baseline) - len(lost), len(lost))
    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
