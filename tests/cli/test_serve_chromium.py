"""`olmo-tui serve` driven by a real headless Chromium (Selenium + chromedriver).

The screen is read as the browser received it: Chromium's performance log carries every
websocket frame the page got, and pyte (a terminal emulator) replays those bytes into the
grid xterm.js drew. Keys go to xterm.js's own input element, as a person's typing would.
Skips with the reason where Chromium, chromedriver or selenium is missing (`.ci/run`
installs Debian's chromium and chromium-driver when it runs as root).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli_helpers import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
selenium = pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[test]')")
pyte = pytest.importorskip("pyte", reason="pyte not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium/chromedriver not installed (apt-get install chromium chromium-driver)",
)

SCREENS = REPO / "docs" / "screens"
COLS, ROWS = 120, 36


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except urllib.error.URLError:  # not listening yet
        return 0


class BrowserScreen:
    """The terminal grid the page drew, rebuilt from the websocket frames it received."""

    def __init__(self, driver):
        self.driver = driver
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def pump(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message.get("method"), message.get("params", {})
            if method == "Network.webSocketFrameSent":  # the page tells the app its size
                payload = params["response"].get("payloadData", "")
                if payload.startswith('["resize"'):
                    size = json.loads(payload)[1]
                    self.screen.resize(size["height"], size["width"])
            elif method == "Network.webSocketFrameReceived":
                frame = params["response"]
                if frame.get("opcode") == 2:  # binary: terminal output; text frames are JSON control
                    self.stream.feed(base64.b64decode(frame["payloadData"]))

    def text(self) -> str:
        self.pump()
        return "\n".join(self.screen.display)

    def wait_for(self, pattern: str, timeout: float = 90) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"never saw {pattern!r} in the browser; last screen:\n{self.text()}")


@pytest.fixture
def served(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "olmo_tui", "serve", "--port", str(port)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.err", "w"), text=True,
    )
    try:
        url = server.stdout.readline().strip()
        assert url.startswith(f"http://127.0.0.1:{port}/"), url
        deadline = time.monotonic() + 30
        while http_status(url) != 200:
            assert server.poll() is None, (tmp_path / "serve.err").read_text()
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.2)
        yield url, port, tmp_path / "serve.err"
    finally:
        server.terminate()
        server.wait(timeout=30)


def chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def test_refuses_requests_without_the_token(served):
    url, port, _ = served
    assert http_status(f"http://127.0.0.1:{port}/") == 403
    assert http_status(f"http://127.0.0.1:{port}/static/js/textual.js") == 403
    assert http_status(f"http://127.0.0.1:{port}/not-the-token/") == 403
    assert http_status(url) == 200


@pytest.mark.timeout(900)  # waits are for screen states; a loaded 2-core machine makes the first step slow
def test_browser_launches_a_run_and_its_monitor_shows_a_loss(served, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, _, serve_log = served
    driver = chromium(tmp_path)
    try:
        driver.get(url)
        screen = BrowserScreen(driver)
        screen.wait_for(r"olmo-tui — presets")
        screen.wait_for(r"tiny-cpu")

        keys = driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea")

        def press(*sequence):
            keys.send_keys(*sequence)

        press("/")
        time.sleep(1)  # the filter box mounts; typed keys before it has focus go to the list
        for char in "tiny-cpu":
            press(char)
        screen.wait_for(r"(?m)^tiny-cpu")  # the filter box holds the text
        press(Keys.ENTER)
        screen.wait_for(r"tiny-cpu\s+\(built-in\)")
        ActionChains(driver).key_down(Keys.CONTROL).send_keys_to_element(keys, "l").key_up(Keys.CONTROL).perform()
        screen.wait_for(r"Launch this config\?")
        press(Keys.ENTER)
        run = screen.wait_for(r"run (tiny-cpu-\d{8}-\d{6}-\w+)").group(1)
        screen.wait_for(r"loss\s+\d+\.\d+", timeout=600)
        # docs/screens/browser-monitor.png is this screenshot, refreshed with OLMO_TUI_WRITE_SCREENS=1.
        shot = SCREENS if os.environ.get("OLMO_TUI_WRITE_SCREENS") == "1" else tmp_path
        assert driver.save_screenshot(str(shot / "browser-monitor.png"))

        press("c")
        screen.wait_for(r"Cancel " + re.escape(run))
        press("y")
        screen.wait_for(re.escape(run) + r"\s+cancelled")  # the app is still up and shows the end
    finally:
        driver.quit()

    # The run launched in the browser is an ordinary run of the registry, cancelled there too.
    listed = subprocess.run([sys.executable, "-m", "olmo_tui", "runs", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    records = {record["id"]: record for record in json.loads(listed.stdout)}
    assert records[run]["status"] in ("cancelled", "cancelling")
    token = url.rstrip("/").rsplit("/", 1)[1]
    assert token not in Path(serve_log).read_text()
    assert token not in listed.stdout
