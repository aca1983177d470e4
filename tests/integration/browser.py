"""A real browser for the web page's tests: the system Chromium, headless, driven by Selenium
through the system chromedriver (nothing is downloaded), and ``served_page``: a daemon serving
the page with one such browser open on it, the body of each browser module's fixture.

Missing Chromium or chromedriver skips the browser tests with a message, unless
``ISEARCH_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs both) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from daemons import DaemonProcess, free_tcp_port, short_tmpdir

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_NAMES = ("chromedriver",)
WAIT_S = 30  # seconds a page may take to show what a test waits for

T = TypeVar("T")


def _find(names: tuple[str, ...], extra: tuple[str, ...] = ()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in extra if os.path.exists(p)), None)


def chromium(width: int = 1280, height: int = 860):  # type: ignore[no-untyped-def]
    """A headless Chromium WebDriver (the caller quits it); skips or fails when there is none."""
    binary = _find(CHROMIUM_NAMES)
    driver_path = _find(DRIVER_NAMES, ("/usr/lib/chromium/chromedriver",))
    if binary is None or driver_path is None:
        why = "the browser tests need Chromium and chromedriver (apt-get install chromium chromium-driver)"
        if os.environ.get("ISEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


def wait_for(driver: Any, script: str, *args: Any, timeout: float = WAIT_S) -> Any:
    """Run ``script`` (JavaScript, ``arguments[i]`` are ``args``) until it returns something true;
    its value. Fails with Selenium's TimeoutException after ``timeout`` seconds."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda drv: drv.execute_script(script, *args))


@contextmanager
def served_page(fill: Callable[[DaemonProcess, str], T], **options: Any) -> Iterator[tuple[Any, str, T]]:
    """(driver, address, what ``fill`` returned): a daemon (``DaemonProcess`` options, e.g.
    ``people=True``) in a short temporary folder serving the page on a free local port
    (``address``, host:port), filled by ``fill(daemon, address)`` before the browser starts, then
    one Chromium opened on the page. A module fixture's body, so a module has one browser session:
    ``with served_page(fill, words=True) as (driver, address, _): yield driver, address``. The
    daemon must stop cleanly after; the browser quits and the daemon is killed whatever happens."""
    root = short_tmpdir()
    address = f"127.0.0.1:{free_tcp_port()}"
    d = DaemonProcess(root, **options, extra_args=("--ui", address)).start()
    driver = None
    try:
        filled = fill(d, address)
        driver = chromium()
        driver.get(f"http://{address}/")
        wait_for(driver, "return document.querySelector('#db').options.length > 0")
        yield driver, address, filled
        assert d.stop() == 0, d.output()
    finally:
        if driver is not None:
            driver.quit()
        d.kill()
        shutil.rmtree(root, ignore_errors=True)
