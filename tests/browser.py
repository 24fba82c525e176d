"""Headless-Chromium test harness over the Chrome DevTools Protocol (CDP).

Tests open offline HTML pages (file:// URLs) in Debian's /usr/bin/chromium (`make browser`
installs it and the Noto CJK fonts), check the DOM, check which fonts really render the text,
and keep a screenshot under artifact_dir().

Why raw CDP rather than a screenshot diff or a driver library: CSS.getPlatformFontsForNode reports
the platform fonts the renderer actually used for a node's glyphs (family, PostScript name, glyph
count). A page whose Chinese text fell back to tofu boxes shows up as no CJK family there, so a test
can assert "these glyphs were drawn with Noto Sans CJK" instead of guessing from pixels. The client
needs only the stdlib and `websockets` (sync client); nothing is downloaded at run time.

    with Chromium() as browser:
        browser.open(Path("page.html").resolve().as_uri())
        assert browser.evaluate("document.title") == "..."
        fonts = browser.platform_fonts("h1")
        browser.screenshot(artifact_dir() / "page.png")

A missing Chromium raises BrowserError telling to run `make browser`: tests fail, never skip.
"""
from __future__ import annotations

import base64
import collections
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from websockets.sync.client import connect

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent


class BrowserError(RuntimeError):
    """Chromium could not be started, or a CDP command failed."""


def artifact_dir() -> Path:
    """Directory for test artifacts (screenshots): $HOTLINE_TEST_ARTIFACTS or <repo>/var/test-artifacts."""
    path = Path(os.environ.get("HOTLINE_TEST_ARTIFACTS") or ROOT / "var" / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Chromium:
    """One headless Chromium process and a CDP session on its page target (a context manager)."""

    def __init__(self, width: int = 1280, height: int = 900, binary: str = CHROMIUM,
                 start_timeout: float = 20.0, env: Mapping[str, str] | None = None) -> None:
        """`width`x`height`: the page viewport in CSS px. `env`: extra environment variables for
        the browser (e.g. FONTCONFIG_FILE to hide fonts in a negative control)."""
        self.width, self.height = width, height
        self.binary = binary
        self.start_timeout = start_timeout
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._tmpdir: str | None = None
        self._ws = None
        self._next_id = 0
        self._events: collections.deque[dict] = collections.deque(maxlen=2000)

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Chromium":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        if not (os.path.isfile(self.binary) and os.access(self.binary, os.X_OK)):
            raise BrowserError(f"Chromium not found at {self.binary}: run `make browser` "
                               "(installs Debian's chromium and fonts-noto-cjk)")
        self._tmpdir = tempfile.mkdtemp(prefix="hotline-chromium-")
        stderr = open(os.path.join(self._tmpdir, "stderr.log"), "wb")
        cmd = [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--hide-scrollbars", "--remote-debugging-port=0",
               f"--user-data-dir={self._tmpdir}", f"--window-size={self.width},{self.height}",
               "about:blank"]
        # Own process group, so close() can end the browser and all its helper processes.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                                     env={**os.environ, **self.env}, start_new_session=True)
        stderr.close()
        deadline = time.monotonic() + self.start_timeout
        port_file = Path(self._tmpdir, "DevToolsActivePort")
        while self.port is None:
            if self.proc.poll() is not None:
                self._fail(f"Chromium exited with code {self.proc.returncode} during start-up")
            if time.monotonic() > deadline:
                self._fail(f"no DevToolsActivePort after {self.start_timeout:.0f} s")
            try:
                first = port_file.read_text().splitlines()[0].strip()
                self.port = int(first)
            except (OSError, IndexError, ValueError):
                time.sleep(0.05)
        ws_url = None
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        while ws_url is None:
            if time.monotonic() > deadline:
                self._fail("no page target in /json/list")
            try:
                with no_proxy.open(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as r:
                    targets = json.load(r)
                ws_url = next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)
            except OSError:
                pass
            if ws_url is None:
                time.sleep(0.05)
        # max_size=None: full-page screenshots arrive as one multi-megabyte message.
        self._ws = connect(ws_url, max_size=None, open_timeout=10)
        # Headless --window-size counts window decorations (1280x900 gives a 1280x757 viewport):
        # pin the viewport itself so screenshots and layout are exactly width x height.
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)

    def _stderr_tail(self, lines: int = 30) -> str:
        try:
            text = Path(self._tmpdir or "", "stderr.log").read_text(errors="replace")
        except OSError:
            return "(no stderr captured)"
        return "\n".join(text.splitlines()[-lines:]) or "(stderr empty)"

    def _fail(self, why: str) -> None:
        raise BrowserError(f"Chromium ({self.binary}) did not start: {why}.\n"
                           f"--- chromium stderr (tail) ---\n{self._stderr_tail()}")

    def close(self) -> None:
        """Close the CDP connection, end the browser process group, remove the temp profile."""
        if self._ws is not None:
            try:
                self._ws.close()
            except Exception:
                pass
            self._ws = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            try:  # helpers (zygote, renderers) left in the group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # -- protocol ----------------------------------------------------------------------------
    def _recv(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return json.loads(self._ws.recv(timeout=remaining))

    def send(self, method: str, _timeout: float = 30.0, **params: Any) -> dict:
        """Send one CDP command and return its `result`; events received meanwhile are buffered.

        `params` are the command's CDP parameters; `_timeout` (seconds to wait for the reply) is
        underscored so it never clashes with a CDP parameter such as Runtime.evaluate's `timeout`.
        A protocol error raises BrowserError."""
        if self._ws is None:
            raise BrowserError("browser not started (use `with Chromium() as browser:`)")
        self._next_id += 1
        msg_id = self._next_id
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + _timeout
        while True:
            try:
                msg = self._recv(deadline)
            except TimeoutError:
                raise BrowserError(f"{method}: no reply within {_timeout} s") from None
            if msg.get("id") == msg_id:
                if "error" in msg:
                    err = msg["error"]
                    raise BrowserError(f"{method} failed: {err.get('message')} ({err.get('code')}) "
                                       f"{err.get('data', '')}".rstrip())
                return msg.get("result", {})
            if "method" in msg:
                self._events.append(msg)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        """Return the params of the first (buffered or new) event named `method`, consuming it."""
        for i, ev in enumerate(self._events):
            if ev["method"] == method:
                del self._events[i]
                return ev.get("params", {})
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._recv(deadline)
            except TimeoutError:
                raise BrowserError(f"no {method} event within {timeout} s") from None
            if msg.get("method") == method:
                return msg.get("params", {})
            if "method" in msg:
                self._events.append(msg)

    def open(self, url: str, timeout: float = 30.0) -> None:
        """Navigate to `url`, wait for the load event, then for document.fonts.ready."""
        self.send("Page.enable")
        self._events.clear()
        nav = self.send("Page.navigate", url=url, _timeout=timeout)
        if nav.get("errorText"):
            raise BrowserError(f"navigating to {url} failed: {nav['errorText']}")
        self.wait_event("Page.loadEventFired", timeout=timeout)
        self.evaluate("document.fonts.ready.then(() => document.fonts.status)", timeout=timeout)

    def evaluate(self, expr: str, timeout: float = 30.0) -> Any:
        """Evaluate a JS expression in the page (promises awaited) and return its value as JSON."""
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True,
                        _timeout=timeout)
        if "exceptionDetails" in res:
            det = res["exceptionDetails"]
            text = det.get("exception", {}).get("description") or det.get("text")
            raise BrowserError(f"JS error evaluating {expr!r}: {text}")
        return res.get("result", {}).get("value")

    def platform_fonts(self, selector: str) -> list[dict]:
        """Platform fonts that rendered the text of the first node matching the CSS `selector`.

        Returns dicts as CSS.getPlatformFontsForNode gives them: familyName, postScriptName,
        isCustomFont (a web font) and glyphCount; one per font face, glyph counts added up over
        the element's text. [] when nothing of it is rendered (display:none, no text).

        What the command needs: the DOM and CSS domains enabled, and a nodeId from this session
        (DOM.getDocument, then DOM.querySelector on the root's nodeId). Asked for an *element* it
        reports the element's own inline-level text (inline children like <b> included), which is
        unreliable for containers: a <div> wrapping block children, a display:contents element or
        an <svg> whose <text> sits in a <g> answer [], and a <div> with several <p>s answers for only
        one of them (Chromium 156). Asked for a *text node* it is exact. So this walks the
        getDocument(depth=-1, pierce=True) tree below the element (shadow roots and iframes
        included), asks every non-blank text node, and merges per font face; only when that finds
        nothing does it return the element's own answer (e.g. text from CSS `content:`). SVG <text>
        and <tspan> inside inline SVG work the same way.
        """
        self.send("DOM.enable")
        self.send("CSS.enable")
        root = self.send("DOM.getDocument", depth=-1, pierce=True)["root"]
        node_id = self.send("DOM.querySelector", nodeId=root["nodeId"], selector=selector)["nodeId"]
        if not node_id:
            raise BrowserError(f"no element matches {selector!r}")
        node = _find_node(root, node_id)
        merged: dict[tuple, dict] = {}
        for text_id in _text_descendants(node) if node else []:
            for font in self.send("CSS.getPlatformFontsForNode", nodeId=text_id)["fonts"]:
                key = (font.get("familyName"), font.get("postScriptName"), font.get("isCustomFont"))
                if key in merged:
                    merged[key]["glyphCount"] += font.get("glyphCount", 0)
                else:
                    merged[key] = dict(font)
        if merged:
            return list(merged.values())
        return self.send("CSS.getPlatformFontsForNode", nodeId=node_id)["fonts"]

    def screenshot(self, path: str | os.PathLike, full_page: bool = True) -> Path:
        """Write a PNG screenshot (the whole page by default, else the viewport) and return its path."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": max(1, size["width"]),
                                "height": max(1, size["height"]), "scale": 1})
        data = base64.b64decode(self.send("Page.captureScreenshot", _timeout=60, **params)["data"])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


def cjk_fonts(fonts: list[dict]) -> list[dict]:
    """The entries of a platform_fonts() list that are CJK faces (family name contains "CJK",
    e.g. Noto Sans CJK SC) and drew at least one glyph. Tofu is drawn too (as .notdef glyphs of a
    Latin font, glyphCount > 0), so check the family, not just the count."""
    return [f for f in fonts if "CJK" in (f.get("familyName") or "") and f.get("glyphCount", 0) > 0]


def _find_node(node: dict, node_id: int) -> dict | None:
    stack = [node]
    while stack:
        cur = stack.pop()
        if cur.get("nodeId") == node_id:
            return cur
        stack.extend(cur.get("children", []))
        stack.extend(cur.get("shadowRoots", []))
        if "contentDocument" in cur:
            stack.append(cur["contentDocument"])
    return None


def _text_descendants(node: dict) -> list[int]:
    out, stack = [], [node]
    while stack:
        cur = stack.pop()
        if cur.get("nodeType") == 3 and cur.get("nodeValue", "").strip():
            out.append(cur["nodeId"])
        kids = cur.get("children", []) + cur.get("shadowRoots", [])
        if "contentDocument" in cur:
            kids.append(cur["contentDocument"])
        stack.extend(reversed(kids))
    return out
