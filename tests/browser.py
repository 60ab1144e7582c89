"""Open a built HTML page in headless Chromium and report what it drew.

Usage::

    from browser import render_page

    report = render_page(Path("_build/html/gap.html"), Path("artifacts/gap.png"))
    assert report.console_errors == []
    assert report.figures_drawn == report.figures_expected

The helper starts Debian's ``chromium`` and drives it over the DevTools
protocol on a pipe (``--remote-debugging-pipe``), so it needs no Python
package beyond Pillow and numpy and no open port. Through the protocol it collects
console messages with their level, uncaught exceptions and failed resource
loads, counts the plotly figures that drew, and saves a full-page
screenshot.

No network: host names resolve to nothing (``--host-resolver-rules``), so a
page that fetches plotly.js or MathJax from a CDN fails here the way it would
offline, and every remote request is listed in ``PageReport.remote_requests``.

WebGL (scattergl, scatter3d): with ``--disable-gpu`` alone, Chromium 156 on
Debian 12 still falls back to its software rasterizer (SwiftShader) but warns
"Automatic fallback to software WebGL has been deprecated" for every WebGL
context. ``--use-angle=swiftshader --enable-unsafe-swiftshader``
opts in to the software path explicitly: WebGL 1 contexts are created, plotly
draws its gl traces, and the console stays clean. Both flags are in
``CHROMIUM_FLAGS``. ``PageReport.webgl_available`` records whether the page
could create a WebGL context at all. Without one, plotly replaces a gl figure
by its "WebGL is not supported" notice, and ``FigureReport.webgl_notice`` is
true for that figure.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHROMIUM = "chromium"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-pipe",
)

# Runs in the page after plotly had its chance to draw. A figure counts as
# drawn when plotly put its SVG root (.main-svg) into the figure's div and did
# not replace the figure by its "WebGL is not supported" notice.
_FIGURES_SCRIPT = r"""
(() => {
  const selector = %s;
  const canvas = document.createElement("canvas");
  const webgl = !!(canvas.getContext("webgl") || canvas.getContext("experimental-webgl"));
  const figures = [...document.querySelectorAll(selector)].map((div, index) => {
    const box = div.getBoundingClientRect();
    const full = div._fullData || [];
    return {
      index: index,
      div_id: div.id || "",
      drawn: div.querySelector(".main-svg") !== null
        && !(div.textContent || "").includes("WebGL is not supported"),
      trace_types: full.map((trace) => trace.type),
      gl_canvases: div.querySelectorAll("canvas").length,
      webgl_notice: (div.textContent || "").includes("WebGL is not supported"),
      frames: (div._transitionData && div._transitionData._frames || []).length,
      box: [box.left + window.scrollX, box.top + window.scrollY, box.width, box.height],
    };
  });
  return {
    webgl: webgl,
    figures: figures,
    plotly_loaded: typeof window.Plotly !== "undefined",
    height: Math.ceil(document.documentElement.scrollHeight),
    long_tasks_ms: (window.__medgapLongTasks || []),
  };
})()
"""

# Installed before any page script runs: records tasks that block the main
# thread for 50 ms or more, the browser's own definition of a long task.
_LONG_TASK_OBSERVER = r"""
window.__medgapLongTasks = [];
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__medgapLongTasks.push(Math.round(entry.duration));
  }).observe({type: "longtask", buffered: true});
} catch (error) {}
"""


@dataclasses.dataclass
class FigureReport:
    """One plotly figure on the page.

    Attributes:
        div_id: id of the figure's ``<div>``.
        drawn: plotly created the figure's SVG root inside the div and did
            not replace it by its "WebGL is not supported" notice.
        trace_types: plotly trace types after defaults, e.g. ``["scattergl"]``.
        gl_canvases: number of ``<canvas>`` elements (WebGL layers) in the div.
        webgl_notice: plotly replaced the figure by "WebGL is not supported".
        frames: number of animation frames registered with the figure.
        box: left, top, width, height of the div in CSS pixels of the page.
        color_fraction: share of the div's screenshot pixels that are
            saturated (max-min channel spread above 60 of 255). Plotly's axes,
            grid, text and background are gray or nearly so, so this share is
            close to 0 when no data marks drew, for example on a blank WebGL
            canvas. ``None`` when no screenshot was taken or the div is off it.
    """

    div_id: str
    drawn: bool
    trace_types: list[str]
    gl_canvases: int
    webgl_notice: bool
    frames: int
    box: tuple[float, float, float, float]
    color_fraction: float | None = None


@dataclasses.dataclass
class PageReport:
    """What headless Chromium drew for one page.

    Attributes:
        url: the ``file://`` URL that was opened.
        figures_expected: elements that match the figure selector.
        figures_drawn: those in which plotly drew (``FigureReport.drawn``).
        figures: one ``FigureReport`` per matching element, in page order.
        console_errors: console ``error``/``assert`` calls, uncaught
            exceptions and log entries of level ``error`` (failed loads).
        console_warnings: console ``warn`` calls and log entries of level
            ``warning``.
        remote_requests: URLs the page requested that are not ``file:``,
            ``data:``, ``blob:`` or ``about:``. They fail here (no network).
        plotly_loaded: ``window.Plotly`` was defined after the page loaded.
        webgl_available: the page could create a WebGL context.
        long_tasks_ms: durations of main-thread tasks of 50 ms or more,
            in milliseconds, from load until the report was taken.
        seconds_to_draw: wall time from navigation until every figure drew,
            or until the time-out.
        screenshot: path of the full-page PNG, or ``None``.
        script_result: the value of ``render_page``'s ``script``, or ``None``.
    """

    url: str
    figures_expected: int
    figures_drawn: int
    figures: list[FigureReport]
    console_errors: list[str]
    console_warnings: list[str]
    remote_requests: list[str]
    plotly_loaded: bool
    webgl_available: bool
    long_tasks_ms: list[int]
    seconds_to_draw: float
    screenshot: Path | None
    script_result: Any = None

    @property
    def all_drawn(self) -> bool:
        """Every figure drew and the page logged no error."""
        return self.figures_drawn == self.figures_expected and not self.console_errors


class BrowserError(RuntimeError):
    """Chromium failed to start, exited or did not reply in time."""


def chromium_path() -> str | None:
    """Return the path of the ``chromium`` executable, or ``None`` if missing."""
    return shutil.which(CHROMIUM)


class _DevToolsPipe:
    """Minimal DevTools protocol client over Chromium's debugging pipe.

    Chromium reads NUL-terminated JSON commands from file descriptor 3 and
    writes replies and events to file descriptor 4.
    """

    def __init__(self, executable: str, flags: list[str], profile_dir: str) -> None:
        to_browser_read, self._write_fd = os.pipe()
        self._read_fd, from_browser_write = os.pipe()
        # Chromium expects the pipes on descriptors 3 and 4. The child copies
        # both ends to fresh numbers first, so placing one cannot overwrite
        # the other when the parent happened to open them as 3 or 4.
        def place_pipes() -> None:
            command_end = os.dup(to_browser_read)
            reply_end = os.dup(from_browser_write)
            os.dup2(command_end, 3)
            os.dup2(reply_end, 4)

        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [executable, *flags, f"--user-data-dir={profile_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(3, 4),
            preexec_fn=place_pipes,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 30.0) -> dict[str, Any]:
        """Send one command and return its ``result``; events seen meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while True:
            for reply in self._read(deadline):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise BrowserError(f"{method} failed: {reply['error']}")
                    return reply.get("result", {})
                self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Collect events for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.events.extend(self._read(deadline, allow_timeout=True))

    def _read(self, deadline: float, allow_timeout: bool = False) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if allow_timeout:
                    return []
                raise BrowserError(f"Chromium did not reply in time; its log:\n{self.log_tail()}")
            ready, _, _ = select.select([self._read_fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self.process.poll()}); its log:\n{self.log_tail()}")
            self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(message) for message in messages]

    def log_tail(self, characters: int = 3000) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-characters:]

    def close(self) -> None:
        try:
            os.write(self._write_fd, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self._write_fd)
            os.close(self._read_fd)
            self._log.close()


def _format_console(event: dict[str, Any]) -> str:
    params = event["params"]
    text = " ".join(
        str(argument.get("value", argument.get("description", argument.get("type"))))
        for argument in params.get("args", [])
    )
    frames = (params.get("stackTrace") or {}).get("callFrames") or [{}]
    return f"console.{params['type']}: {text} ({frames[0].get('url', '')}:{frames[0].get('lineNumber', '')})"


def _format_exception(event: dict[str, Any]) -> str:
    details = event["params"]["exceptionDetails"]
    description = (details.get("exception") or {}).get("description") or details.get("text", "")
    return f"uncaught exception: {description} ({details.get('url', '')}:{details.get('lineNumber', '')})"


def _collect_messages(events: list[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    remote: list[str] = []
    for event in events:
        method = event.get("method")
        if method == "Runtime.consoleAPICalled":
            kind = event["params"]["type"]
            if kind in ("error", "assert"):
                errors.append(_format_console(event))
            elif kind == "warning":
                warnings.append(_format_console(event))
        elif method == "Runtime.exceptionThrown":
            errors.append(_format_exception(event))
        elif method == "Log.entryAdded":
            entry = event["params"]["entry"]
            text = f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip()
            if entry.get("level") == "error":
                errors.append(text)
            elif entry.get("level") == "warning":
                warnings.append(text)
        elif method == "Network.requestWillBeSent":
            url = event["params"]["request"]["url"]
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                remote.append(url)
    return errors, warnings, remote


def _color_fraction(image: Any, box: tuple[float, float, float, float], scale: float) -> float | None:
    left, top, width, height = (round(value * scale) for value in box)
    if width <= 0 or height <= 0 or top >= image.height or left >= image.width:
        return None
    crop = image.crop((left, top, min(left + width, image.width), min(top + height, image.height)))
    pixels = np.asarray(crop.convert("RGB"), dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return float((spread > 60).mean())


def render_page(
    html_path: str | os.PathLike,
    screenshot_path: str | os.PathLike | None = None,
    *,
    selector: str = ".medgap-plotly",
    width: int = 1200,
    height: int = 1600,
    timeout_s: float = 60.0,
    settle_s: float = 1.0,
    max_screenshot_height: int = 16000,
    extra_flags: tuple[str, ...] = (),
    script: str | None = None,
) -> PageReport:
    """Open ``html_path`` in headless Chromium and report its plotly figures.

    The page is loaded from disk with no network. After the load event the
    helper waits until every element matching ``selector`` contains a drawn
    plotly figure (or ``timeout_s`` passes), then ``settle_s`` more seconds
    for WebGL frames and late errors. When ``screenshot_path`` is given, it
    saves a full-page PNG there, ``width`` CSS pixels wide and at most
    ``max_screenshot_height`` tall. Its parent folders are created.
    ``extra_flags`` go to Chromium after ``CHROMIUM_FLAGS``, for example
    ``("--disable-webgl",)`` to see a page as a browser without WebGL does.
    ``script``, a JavaScript expression, is evaluated once every figure drew
    (a promise is awaited) and its JSON value is kept as
    ``PageReport.script_result``; errors it logs count as console errors.

    Raises:
        FileNotFoundError: ``html_path`` does not exist.
        BrowserError: ``chromium`` is not installed, did not start or did
            not answer within ``timeout_s``.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"html_path {str(html_path)!r} does not exist; build the page first.")
    executable = chromium_path()
    if executable is None:
        raise BrowserError("chromium is not installed; install it with `apt-get install chromium`.")

    profile_dir = tempfile.mkdtemp(prefix="medgap-chromium-")
    flags = [*CHROMIUM_FLAGS, f"--window-size={width},{height}", *extra_flags]
    browser = _DevToolsPipe(executable, flags, profile_dir)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"}, timeout_s=timeout_s)
        session = browser.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": _LONG_TASK_OBSERVER}, session=session)

        started = time.monotonic()
        browser.send("Page.navigate", {"url": html_path.as_uri()}, session=session)
        deadline = started + timeout_s
        loaded = False
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            browser.pump(0.2)
            loaded = loaded or any(event.get("method") == "Page.loadEventFired" for event in browser.events)
            if not loaded:
                continue
            state = _evaluate(browser, session, _FIGURES_SCRIPT % json.dumps(selector))
            if all(figure["drawn"] for figure in state["figures"]):
                break
        seconds_to_draw = time.monotonic() - started
        script_result = None
        if script is not None:
            script_result = _evaluate(browser, session, script)
        browser.pump(settle_s)
        state = _evaluate(browser, session, _FIGURES_SCRIPT % json.dumps(selector))

        screenshot = None
        image = None
        if screenshot_path is not None:
            screenshot = Path(screenshot_path)
            image = _screenshot(browser, session, screenshot, width, min(state["height"], max_screenshot_height))
        browser.pump(0.1)
    finally:
        browser.close()
        shutil.rmtree(profile_dir, ignore_errors=True)

    figures = []
    for figure in state.get("figures", []):
        box = tuple(figure["box"])
        figures.append(FigureReport(
            div_id=figure["div_id"],
            drawn=figure["drawn"],
            trace_types=figure["trace_types"],
            gl_canvases=figure["gl_canvases"],
            webgl_notice=figure["webgl_notice"],
            frames=figure["frames"],
            box=box,
            color_fraction=_color_fraction(image, box, 1.0) if image is not None else None,
        ))
    errors, warnings, remote = _collect_messages(browser.events)
    return PageReport(
        url=html_path.as_uri(),
        figures_expected=len(figures),
        figures_drawn=sum(figure.drawn for figure in figures),
        figures=figures,
        console_errors=errors,
        console_warnings=warnings,
        remote_requests=remote,
        plotly_loaded=bool(state.get("plotly_loaded")),
        webgl_available=bool(state.get("webgl")),
        long_tasks_ms=list(state.get("long_tasks_ms", [])),
        seconds_to_draw=seconds_to_draw,
        screenshot=screenshot,
        script_result=script_result,
    )


def _evaluate(browser: _DevToolsPipe, session: str, expression: str) -> Any:
    result = browser.send(
        "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=session
    )
    if "exceptionDetails" in result:
        details = result["exceptionDetails"]
        description = (details.get("exception") or {}).get("description") or details.get("text")
        raise BrowserError(f"a script evaluated in the page failed: {description}")
    return result["result"].get("value")


def _screenshot(browser: _DevToolsPipe, session: str, path: Path, width: int, height: int) -> Any:
    from PIL import Image

    # A viewport as tall as the page puts every figure on screen, so WebGL
    # canvases below the fold are drawn into the capture too.
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
    browser.pump(0.5)
    shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
    data = base64.b64decode(shot["data"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Image.open(io.BytesIO(data)).convert("RGB")
