"""A real browser through route: Debian's Chromium, driven headless by Playwright, opens
Debian's noVNC page through route and connects to a desktop (Xvfb + x11vnc with a VNC password
+ websockify) the way abcdesktop's client does, with the token in `path=websockify?jwt_token=`
and in the bare-query form. As in abcdesktop, the pages come from the website service behind
route (a static server on Debian's noVNC files) and the WebSocket goes to the same origin, and
route's `websockify` port is the desktop's websockify.

Checks, per form: noVNC reaches its connected state; the canvas shows the desktop's root colour;
a new root colour (xsetroot) shows within a second. A forged token (signed by another key set)
and an expired one get no desktop: noVNC never connects, route answers 401, and websockify sees
no connection at all. Screenshots go to target/outside/screenshots/.

Usage: browser.py [ROUTE_BINARY]"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Page, async_playwright

from common import OUT, Procs, Route, Tally, free_port, route_binary, wait_port, workdir

NOVNC = Path("/usr/share/novnc")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = OUT / "screenshots"
WIDTH, HEIGHT = 800, 600
# Points of the canvas sampled for the root colour: the corners' insides and the centre.
SAMPLES = [(5, 5), (WIDTH - 6, 5), (WIDTH // 2, HEIGHT // 2), (5, HEIGHT - 6), (WIDTH - 6, HEIGHT - 6)]
CONNECT_TIMEOUT = 20.0
CHANGE_LIMIT = 1.0


class Desktop:
    """Xvfb (-noreset, or it wipes the screen when its last client leaves), x11vnc with a VNC
    password, and websockify in front of it, as in an abcdesktop desktop pod."""

    def __init__(self, procs: Procs, work: Path):
        self.procs = procs
        read, write = os.pipe()
        procs.start("xvfb", ["Xvfb", "-displayfd", str(write), "-screen", "0",
                             f"{WIDTH}x{HEIGHT}x24", "-noreset", "-nolisten", "tcp"],
                    pass_fds=(write,))
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError(f"Xvfb gave no display number; see {work}/xvfb.log")
        self.display = f":{number}"
        self.password = secrets.token_hex(4)  # VNC passwords are 8 bytes at most
        passwd = work / "vncpasswd"
        subprocess.run(["x11vnc", "-storepasswd", self.password, str(passwd)], check=True,
                       capture_output=True)
        vnc_port = free_port()
        procs.start("x11vnc", ["x11vnc", "-display", self.display, "-rfbport", str(vnc_port),
                               "-localhost", "-rfbauth", str(passwd), "-forever", "-shared",
                               "-noipv6"])
        wait_port(vnc_port)
        self.port = free_port()
        self.websockify_log = procs.logdir / "websockify.log"
        procs.start("websockify", ["websockify", "-v", f"127.0.0.1:{self.port}",
                                   f"127.0.0.1:{vnc_port}"])
        wait_port(self.port)

    def set_root(self, rgb: tuple[int, int, int]) -> None:
        colour = "#%02x%02x%02x" % rgb
        subprocess.run(["xsetroot", "-display", self.display, "-solid", colour], check=True)

    def connections(self) -> int:
        """WebSocket connections websockify has proxied to x11vnc so far."""
        return len(re.findall(r"connecting to: ", self.websockify_log.read_text(errors="replace")))


async def open_novnc(page: Page, route_port: int, path: str, password: str) -> None:
    # Settings ride in the fragment, as noVNC reads them there first: neither the token nor the
    # VNC password goes to the web server in the page request.
    fragment = f"autoconnect=1&reconnect=0&resize=off&password={password}&path={quote(path, safe='')}"
    await page.goto(f"http://127.0.0.1:{route_port}/vnc.html#{fragment}")


async def state(page: Page) -> str:
    return await page.evaluate("""() => {
        const cls = document.documentElement.classList;
        if (cls.contains('noVNC_connected')) return 'connected';
        const status = document.getElementById('noVNC_status');
        if (status && /Failed|wrong|Disconnected/.test(status.textContent)) return 'failed: ' + status.textContent;
        return 'pending';
    }""")


async def wait_state(page: Page, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        now = await state(page)
        if now != "pending" or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.05)


async def canvas_pixels(page: Page) -> list[tuple[int, int, int]] | None:
    return await page.evaluate("""([points, size]) => {
        const canvas = document.querySelector('#noVNC_container canvas');
        // The framebuffer's own size, or no desktop.
        if (!canvas || canvas.width !== size[0] || canvas.height !== size[1]) return null;
        const ctx = canvas.getContext('2d');
        return points.map(([x, y]) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
    }""", [[list(p) for p in SAMPLES], [WIDTH, HEIGHT]])


def matches(pixels: list | None, rgb: tuple[int, int, int]) -> bool:
    # A small tolerance: noVNC's default quality lets x11vnc use lossy encodings.
    return bool(pixels) and all(all(abs(a - b) <= 6 for a, b in zip(px, rgb)) for px in pixels)


async def wait_colour(page: Page, rgb: tuple[int, int, int], timeout: float) -> float | None:
    """Seconds until every sample shows `rgb`, or None."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if matches(await canvas_pixels(page), rgb):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    return None


async def shot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path))
    print(f"  screenshot {path}", flush=True)
    return path


def watch_handshakes(page: Page) -> list[str]:
    """Errors the browser reports for the page's WebSockets (a refused handshake's status)."""
    errors: list[str] = []
    page.on("websocket", lambda ws: ws.on("socketerror", lambda e: errors.append(e)))
    return errors


def refusals(route: Route) -> tuple[int, list[str]]:
    """route's access lines for /websockify answered 401, and the reasons it logged for them."""
    lines = route.log_lines()
    answered = sum(1 for l in lines if l.get("target") == "route::access"
                   and l.get("route") == "websockify" and l.get("status") == 401)
    reasons = [l.get("reason", "") for l in lines
               if l.get("message") == "request failed" and l.get("status") == 401]
    return answered, reasons


async def connects(tally: Tally, browser, route: Route, desk: Desktop, form: str, path: str,
                   start: tuple[int, int, int], change: tuple[int, int, int]) -> None:
    desk.set_root(start)
    page = await browser.new_page(viewport={"width": WIDTH + 200, "height": HEIGHT + 100})
    try:
        await open_novnc(page, route.port, path, desk.password)
        reached = await wait_state(page, CONNECT_TIMEOUT)
        tally.check(f"{form}: noVNC reaches its connected state", reached == "connected", reached)
        took = await wait_colour(page, start, 5.0)
        tally.check(f"{form}: the canvas shows the desktop's root colour",
                    took is not None, f"samples {await canvas_pixels(page)}, want {start}")
        await shot(page, f"{form}-connected")
        desk.set_root(change)
        took = await wait_colour(page, change, 3.0)
        tally.check(f"{form}: a new root colour shows within {CHANGE_LIMIT} s",
                    took is not None and took <= CHANGE_LIMIT,
                    f"{took:.3f} s" if took is not None else "not within 3 s")
        await shot(page, f"{form}-changed")
    finally:
        await page.close()


async def refused(tally: Tally, browser, route: Route, desk: Desktop, form: str, token: str,
                  reason: str) -> None:
    desk.set_root((0x20, 0x80, 0xC0))
    before_ws = desk.connections()
    before_401, before_reasons = refusals(route)
    page = await browser.new_page(viewport={"width": WIDTH + 200, "height": HEIGHT + 100})
    errors = watch_handshakes(page)
    try:
        await open_novnc(page, route.port, f"websockify?jwt_token={token}", desk.password)
        await wait_state(page, CONNECT_TIMEOUT)
        # Give a late connection the time it would need to show anything, then look again.
        await asyncio.sleep(1.0)
        reached = await state(page)
        tally.check(f"{form}: noVNC does not connect", reached.startswith("failed"), reached)
        pixels = await canvas_pixels(page)
        tally.check(f"{form}: the canvas shows no desktop", not matches(pixels, (0x20, 0x80, 0xC0)),
                    f"samples {pixels}")
        await shot(page, form)
    finally:
        await page.close()
    answered, reasons = refusals(route)
    reasons = reasons[len(before_reasons):]
    # Chromium words a 401 to a WebSocket handshake as an authentication failure.
    tally.check(f"{form}: route answers 401 ({reason})",
                answered > before_401 and set(reasons) == {reason}
                and any("Authentication failed" in e for e in errors),
                f"401 access lines {answered - before_401}, reasons {reasons}, browser {errors}")
    tally.check(f"{form}: websockify sees no connection", desk.connections() == before_ws,
                f"{desk.connections() - before_ws} new")


async def run(tally: Tally, route: Route, desk: Desktop) -> list[str]:
    token = route.token()
    forged = route.token(keys=route.other_keys())
    expired = route.token(exp=int(time.time()) - 60)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print(f"browser: Chromium {browser.version}", flush=True)
        try:
            await connects(tally, browser, route, desk, "jwt_token", f"websockify?jwt_token={token}",
                           (0x20, 0x80, 0xC0), (0xE0, 0x60, 0x20))
            await connects(tally, browser, route, desk, "bare-query", f"websockify?{token}",
                           (0x40, 0xC0, 0x40), (0xC0, 0x30, 0xA0))
            await refused(tally, browser, route, desk, "forged-token", forged, "signature")
            await refused(tally, browser, route, desk, "expired-token", expired, "expired")
        finally:
            await browser.close()
    return [token, forged, expired]


def main() -> int:
    binary = route_binary()
    tally = Tally("browser")
    work = workdir("browser")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    with Procs(work) as procs:
        desk = Desktop(procs, work)
        website = free_port()
        procs.start("website", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                "--directory", str(NOVNC), str(website)])
        wait_port(website)
        route = Route(binary, procs, work)
        route.serve(ports={"websockify": desk.port}, services={"website": website})
        tokens = asyncio.run(run(tally, route, desk))
        log = (work / "route.log").read_text()
        tally.check("no token reached route's log", not any(t in log for t in tokens))
    print(f"browser: logs in {work}", flush=True)
    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
