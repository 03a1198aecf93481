"""Drive an `export --web` page: a plain static server and headless Chromium.

Shared by tests/test_web.py and benchmarks/web_page.py. The page is hosted by
``python -m http.server`` (a subprocess, as a user would), whose request log says which
files were fetched; Chromium (Debian's chromium + chromium-driver under Selenium) logs
every request the page makes (the performance log) and every CSP violation.
"""

import base64
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# http.server's log line: 127.0.0.1 - - [date] "GET /path HTTP/1.1" 200 -
LOG_LINE = re.compile(r'"GET (\S+) HTTP/[\d.]+" (\d{3})')
# Recorded from the first script of every document (before the page's own scripts run).
VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StaticServer:
    """``python -m http.server`` serving ``folder`` on a free port of 127.0.0.1."""

    def __init__(self, folder, log_path):
        self.folder = Path(folder)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
             str(folder), str(self.port)], stdout=subprocess.DEVNULL, stderr=self._log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"http.server did not start: {self.log_path.read_text()}")

    def requests(self):
        """[(path, status)] in the order served."""
        return [(m.group(1), int(m.group(2)))
                for m in LOG_LINE.finditer(self.log_path.read_text(errors="replace"))]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self._log.close()


def chromium(window_size="412,915", mobile=False):
    """Headless Chromium with the performance log on; None when it is not installed."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        return None
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={window_size}",
                     "--force-prefers-reduced-motion",
                     # A synthetic camera (a moving test pattern), granted without a prompt.
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    if mobile:
        width, height = map(int, window_size.split(","))
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0}})
    # An explicit chromedriver path: Selenium Manager never tries to download one.
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    driver.set_script_timeout(120)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": VIOLATIONS})
    return driver


def call(driver, script, *args):
    """Run an async page script whose last line resolves ``done(value)``; raises with
    the page's message when it answers {error}."""
    answer = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "(async (...args) => {" + script + "})(...arguments)"
        ".then((value) => done({value}), (e) => done({error: String(e && e.message || e)}));",
        *args)
    if "error" in answer:
        raise AssertionError(f"page: {answer['error']}")
    return answer["value"]


def wait_ready(driver):
    return call(driver, "return await window.lenetKeras.ready;")


BLOB = "const blob = new Blob([Uint8Array.from(atob(args[0]), c => c.charCodeAt(0))]);"


def classify(driver, data):
    """The page's window.lenetKeras.classify on image bytes."""
    return call(driver, BLOB + "return await window.lenetKeras.classify(blob);",
                base64.b64encode(data).decode())


def preprocess(driver, data):
    """The model input the page computes for image bytes, as uint8 numpy."""
    values = call(driver, BLOB + "return Array.from(await window.lenetKeras.preprocess(blob));",
                  base64.b64encode(data).decode())
    return np.asarray(values, np.uint8)


def page_requests(driver):
    """URLs of every request the page (and its worker) started, from the performance log."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def violations(driver):
    return driver.execute_script("return window.__cspViolations || [];")


def go_offline(driver):
    """DevTools' network emulation: offline (what the Network panel's "Offline" does)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def service_worker_active(driver):
    return call(driver, "const r = await navigator.serviceWorker.getRegistration();"
                        "return Boolean(r && r.active && navigator.serviceWorker.controller);")


def write_test_images(x_test, folder, count):
    """``count`` test images as files a user would pick: mostly PNGs at the model's size
    (their pixels must reach the model exactly as ``predict`` feeds them); every fifth an
    RGB PNG of another size (the ported PIL resize and the luma) and every tenth an
    enlarged RGB JPEG (the browser's JPEG decoder). Returns the paths."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = x_test[i]
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        if i % 10 == 9:
            path = folder / f"test{i:03d}.jpg"
            image.convert("RGB").resize((96, 96), Image.Resampling.BICUBIC).save(path, quality=92)
        elif i % 5 == 4:
            path = folder / f"test{i:03d}.png"
            tint = np.asarray(image.convert("RGB"), np.float32) * np.float32([1.0, 0.8, 0.6])
            Image.fromarray(tint.astype(np.uint8)).resize((61, 45)).save(path)
        else:
            path = folder / f"test{i:03d}.png"
            image.save(path)
        paths.append(path)
    return paths


def predict_lines(stdout):
    """`predict --top-k K` output -> {path: [(label, probability), ...]}."""
    rows = {}
    for line in stdout.strip().splitlines():
        path, ranked = line.rsplit(": ", 1)
        rows[path] = [(item.rsplit(" ", 1)[0], float(item.rsplit(" ", 1)[1]))
                      for item in ranked.split(", ")]
    return rows
