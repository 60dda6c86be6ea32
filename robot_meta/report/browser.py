"""A headless Chromium/Chrome for a report: `screenshot` of the page, `check_page` for broken images."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robot_meta.report.names import ReportError

#: Browser executables tried by `find_browser`, in order.
BROWSERS = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "headless_shell",
)


def find_browser() -> str | None:
    """The path of a Chromium/Chrome executable on PATH (see `BROWSERS`), or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(browser: str | None) -> str:
    exe = browser or find_browser()
    if exe is None:
        raise ReportError(
            "no headless browser found: install Chromium (`apt-get install chromium`) or Chrome, "
            f"or pass its path (tried {', '.join(BROWSERS)})"
        )
    return exe


def _headless(exe: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@dataclass(frozen=True)
class PageCheck:
    """What a headless browser saw when it loaded a page."""

    broken_images: int | None
    """Images that failed to load (None if the page's check script did not run)."""
    console_errors: tuple[str, ...]
    """Console errors and uncaught exceptions logged by the page."""

    @property
    def ok(self) -> bool:
        return self.broken_images == 0 and not self.console_errors


def _console_errors(stderr: str) -> Iterator[str]:
    for line in stderr.splitlines():
        if "Uncaught" in line or ("CONSOLE" in line and "error" in line.lower()):
            yield line.strip()


def check_page(page: str | Path, *, browser: str | None = None, timeout: float = 60.0) -> PageCheck:
    """Load `page` in a headless browser; count broken images and collect console errors."""
    exe = _browser(browser)
    url = Path(page).resolve().as_uri()
    res = _headless(exe, "--virtual-time-budget=5000", "--dump-dom", url, timeout=timeout)
    m = re.search(r'data-broken-images="(\d+)"', res.stdout)
    return PageCheck(int(m.group(1)) if m else None, tuple(_console_errors(res.stderr)))


def screenshot(
    page: str | Path,
    png: str | Path,
    *,
    size: tuple[int, int] = (1200, 2600),
    browser: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """A PNG screenshot of `page` (``width x height`` pixels) taken by a headless Chromium/Chrome."""
    exe = _browser(browser)
    out = Path(png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    res = _headless(
        exe,
        f"--screenshot={out}",
        f"--window-size={size[0]},{size[1]}",
        "--virtual-time-budget=5000",
        Path(page).resolve().as_uri(),
        timeout=timeout,
    )
    if not out.is_file():
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        raise ReportError(f"{exe} wrote no screenshot (exit {res.returncode}): {tail}")
    return out
