"""Headless Chromium driven over the DevTools protocol on a pipe, with nothing but the stdlib.

Why not selenium: the report test needs three things (console errors, decoded images, a
screenshot), which the DevTools protocol gives directly; ``--remote-debugging-pipe`` needs no port,
no chromedriver version match and no extra package.

    with Chromium() as browser:
        page = browser.open(Path("report.html"))   # PageResult: errors, images, screenshot PNG
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary (``$CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and shutil.which(env):
        return shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    """Chromium did not start or did not answer in time."""


@dataclass
class PageResult:
    """What the test checks: console/JS/network errors, every <img>, a PNG screenshot."""

    errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    title: str = ""


class Chromium:
    """One headless Chromium process; ``open(path)`` loads a page in a fresh tab."""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 900,
                 timeout: float = 60.0) -> None:
        self.binary = binary or find_chromium()
        if not self.binary:
            raise BrowserError("Chromium not found (apt-get install chromium, or set $CHROMIUM)")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._events: list[dict[str, Any]] = []
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="odic-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_fds() -> None:  # in the child: the protocol pipe must be fds 3 (in) and 4 (out)
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--no-first-run", "--no-default-browser-check", "--mute-audio",
                "--hide-scrollbars", f"--window-size={self.width},{self.height}",
                f"--user-data-dir={self._profile}", "--remote-debugging-pipe", "about:blank"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=wire_fds, close_fds=False)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.call("Browser.getVersion")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except BrowserError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # ------------------------------------------------------------------ protocol
    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    self._replies.put(msg)
                else:
                    self._events.append(msg)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send one command and wait for its reply (events seen meanwhile are kept)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        except OSError as exc:
            raise BrowserError(f"Chromium is gone ({exc})") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no reply to {method} within {timeout or self.timeout:g} s")
            try:
                reply = self._replies.get(timeout=left)
            except queue.Empty:
                continue
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _wait_event(self, name: str, session: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == name and e.get("sessionId") == session for e in self._events):
                return
            time.sleep(0.05)
        raise BrowserError(f"no {name} within {timeout:g} s")

    # ------------------------------------------------------------------ pages
    def open(self, path: Path, full_page: bool = False, scale: float = 1.0) -> PageResult:
        """Load ``path``, wait for the load event, check images, take a screenshot."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": scale, "mobile": False},
                  session=session)
        nav = self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=session)
        result = PageResult()
        if nav.get("errorText"):
            result.errors.append(f"navigation: {nav['errorText']}")
        self._wait_event("Page.loadEventFired", session, self.timeout)
        js = ("JSON.stringify({title: document.title, images: Array.from(document.images).map(i => "
              "({alt: i.alt, complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,"
              " src: i.currentSrc.slice(0, 40)}))})")
        value = self.call("Runtime.evaluate", {"expression": js, "returnByValue": True}, session=session)
        info = json.loads(value["result"]["value"])
        result.title, result.images = info["title"], info["images"]
        shot: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            shot.update(captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        result.screenshot = base64.b64decode(self.call("Page.captureScreenshot", shot, session=session)["data"])
        for e in self._events:
            if e.get("sessionId") != session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                result.errors.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                result.errors.append("console: " + " ".join(str(a.get("value")) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                result.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        self.call("Target.closeTarget", {"targetId": target})
        return result
