"""Start the app with `streamlit run` on a free loopback port and drive it with Debian's chromium.

Shared by the browser test (tests/app/test_browser.py) and the browser benchmark (bench/bench_browser.py).
Playwright's own browser download is not used: it needs the internet. Debian's chromium works with
Playwright's Python package as it is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Without the networking flags chromium tries to reach Google's services at start-up, and on a closed
# network that costs time and log noise.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """A running `streamlit run app.py`; use as a context manager."""

    def __init__(
        self,
        port: int | None = None,
        env: dict[str, str] | None = None,
        theme: str | None = None,
        root: Path | str | None = None,
    ):
        """``theme``: "light" or "dark" forces Streamlit's theme (default: the app's own, which follows the
        browser). ``root``: the checkout whose app.py runs (default: this one; another, to compare two)."""
        self.port = port or free_port()
        self.theme = theme
        self.root = Path(root) if root is not None else ROOT
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = env or {}
        self._log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.started_wall = 0.0  # time.time() at launch, to compare with the browser's clock

    def start(self) -> AppServer:
        self.started_at = time.perf_counter()
        self.started_wall = time.time()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.headless", "true",
                "--server.address", "127.0.0.1",
                "--server.port", str(self.port),
                "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none",
                *(["--theme.base", self.theme] if self.theme else []),
            ],
            cwd=self.root,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self._env},
        )  # fmt: skip
        return self

    def wait_healthy(self, timeout: float = 90.0) -> float:
        """Blocks until /_stcore/health answers ok; returns seconds since start."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited early:\n{self.log()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        return time.perf_counter() - self.started_at
            time.sleep(0.1)
        raise TimeoutError(f"streamlit did not become healthy in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> AppServer:
        self.start()
        self.wait_healthy()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def browser_page(viewport=(1400, 1000)) -> Iterator:
    """A Playwright page in headless Debian chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            yield context.new_page()
        finally:
            browser.close()


# Records, in the page, when any plotly chart last changed: "every chart has updated" is the moment the
# last chart mutation happened after an edit.
CHART_OBSERVER_JS = """
() => {
  window.__lastChartMutation = 0;
  const observer = new MutationObserver((mutations) => {
    for (const m of mutations) {
      const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      if (el && el.closest('[data-testid="stPlotlyChart"]')) { window.__lastChartMutation = performance.now(); return; }
    }
  });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}
"""

IDLE_JS = """
() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]')
     && !document.querySelector('[data-stale="true"]')
"""


INSTALL_MUTATION_CLOCK_JS = """
() => {
  if (window.__anyObserver) return;
  window.__lastAnyMutation = performance.now();
  window.__anyObserver = new MutationObserver(() => { window.__lastAnyMutation = performance.now(); });
  window.__anyObserver.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}
"""


def wait_idle(page, quiet_ms: int = 400, timeout_s: float = 60.0) -> None:
    """Waits until no rerun is running and nothing on the page has changed for ``quiet_ms``.

    The quiet period covers the gap between an action and the moment Streamlit marks the rerun.
    """
    page.evaluate(INSTALL_MUTATION_CLOCK_JS)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if page.evaluate(IDLE_JS) and page.evaluate("() => performance.now() - window.__lastAnyMutation") >= quiet_ms:
            return
        page.wait_for_timeout(50)
    raise TimeoutError(f"the app did not become idle within {timeout_s} s")


def exceptions_on_page(page) -> list[str]:
    return page.locator('[data-testid="stException"]').all_inner_texts()


def wait_for_loss_curve(page, points: int, timeout_ms: int = 180_000) -> None:
    """Waits until the Train page's live loss curve has more than ``points`` points."""
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                 .filter(c => c.innerText.includes('Loss'))
                 .some(c => [...c.querySelectorAll('.scatterlayer path.js-line')]
                            .some(p => (p.getAttribute('d') || '').split('L').length > {points}))""",
        timeout=timeout_ms,
    )
