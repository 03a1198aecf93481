"""serve: the real server (a subprocess on a free port) over a real int8 export.

The API gives predict's labels, each bad input gets its status code and leaves the
server answering, 32 concurrent requests are all answered correctly, and the page works
in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).
"""

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet_keras.errors import BadInput
from lenet_keras.serve import MAX_UPLOAD_BYTES, resolve_model_path, verdict

from conftest import ROOT, run_cli_process as run_cli

NUM_IMAGES = 20
URL_LINE = re.compile(rb"open (http://127\.0\.0\.1:(\d+)/)")


# ---------------------------------------------------------------------------------------
# Fixtures: one quick run exported to int8, test images, the running server
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """`fit --epochs 1` on the embedded Fashion-MNIST sample, then `export --quantize int8`."""
    base = tmp_path_factory.mktemp("serve")
    fit = run_cli("fit", "--epochs", 1, "--run-dir", base / "run")
    assert fit.returncode == 0, fit.stderr[-2000:]
    export = run_cli("export", "--run-dir", base / "run", "--quantize", "int8",
                     "--calibration-samples", 100, "--out", base / "export")
    assert export.returncode == 0, export.stderr[-2000:]
    return base / "export"


@pytest.fixture(scope="module")
def test_images(tmp_path_factory):
    """20 test images of the sample: PNGs at 28x28, every fourth an enlarged RGB JPEG (so
    the shared decoder's resize and grayscale conversion are exercised too)."""
    from lenet_keras.sources import load_arrays

    arrays = load_arrays(None)
    folder = tmp_path_factory.mktemp("serve_images")
    paths = []
    for i in range(NUM_IMAGES):
        image = Image.fromarray(arrays.x_test[i, :, :, 0])
        if i % 4 == 3:
            path = folder / f"test{i:02d}.jpg"
            image.convert("RGB").resize((96, 96)).save(path, quality=92)
        else:
            path = folder / f"test{i:02d}.png"
            image.save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def predicted(export_dir, test_images):
    """`predict` (a real process) on the 20 images with the served int8 file: {path: [(label, p)]}."""
    result = run_cli("predict", *test_images, "--model", export_dir / "model_int8.tflite",
                     "--top-k", 3)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {}
    for line in result.stdout.strip().splitlines():
        path, ranked = line.rsplit(": ", 1)
        rows[path] = [(item.rsplit(" ", 1)[0], float(item.rsplit(" ", 1)[1]))
                      for item in ranked.split(", ")]
    assert len(rows) == NUM_IMAGES
    return rows


class Server:
    """`python -m lenet_keras serve ... --port 0` as a subprocess; its URL read from its
    stdout, its log (stderr) in a file."""

    def __init__(self, *args, log_path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lenet_keras", "serve", *map(str, args), "--port", "0"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
            stderr=self._log, bufsize=0)
        self.stdout = b""
        deadline = time.monotonic() + 120
        while not URL_LINE.search(self.stdout):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
            chunk = os.read(self.process.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                self.stop()
                raise AssertionError(f"serve did not start: {self.stdout!r} "
                                     f"{Path(log_path).read_text()[-2000:]}")
            self.stdout += chunk
        url, port = URL_LINE.search(self.stdout).groups()
        self.url, self.port = url.decode(), int(port)

    def log_lines(self):
        return Path(self.log_path).read_text().splitlines()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.stdout += self.process.stdout.read()
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(export_dir, tmp_path_factory):
    served = Server("--export-dir", export_dir,
                    log_path=tmp_path_factory.mktemp("serve_log") / "serve.log")
    yield served
    served.stop()


def request(server, method, path, body=None, headers=None, chunked=False):
    """One HTTP request on its own connection -> (status, headers, parsed JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {},
                           encode_chunked=chunked)
        response = connection.getresponse()
        raw = response.read()
        content_type = response.getheader("content-type", "")
        data = json.loads(raw) if content_type.startswith("application/json") else raw
        return response.status, dict(response.getheaders()), data
    finally:
        connection.close()


def multipart(data, filename="photo.png", field="file"):
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post_image(server, path, as_multipart=True):
    data = Path(path).read_bytes()
    if as_multipart:
        body, headers = multipart(data, Path(path).name)
    else:
        body, headers = data, {"Content-Type": "application/octet-stream"}
    return request(server, "POST", "/api/predict", body, headers)


# ---------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_starts_on_loopback_and_says_what_it_serves(server, export_dir):
    stdout = server.stdout.decode()
    assert f"serving {export_dir / 'model_int8.tflite'} (int8, 10 classes: t-shirt_top" in stdout
    assert server.url == f"http://127.0.0.1:{server.port}/"


@pytest.mark.slow
def test_healthz_and_model(server, export_dir):
    assert request(server, "GET", "/healthz")[::2] == (200, {"status": "ok"})
    status, _, info = request(server, "GET", "/api/model")
    assert status == 200
    assert info["labels"] == (export_dir / "labels.txt").read_text().splitlines()
    assert info["model"] == "model_int8.tflite"  # the name only: no absolute paths
    assert (info["format"], info["quantization"]) == ("int8", "full-integer int8")
    assert info["input"]["shape"] == [28, 28, 1] and info["input"]["dtype"] == "int8"
    assert info["output"] == {"shape": [10], "dtype": "int8", "scale": 1 / 256,
                              "zero_point": -128}
    assert info["positive_class"] is None


@pytest.mark.slow
def test_page_and_its_files_are_served_from_the_package(server):
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    html = page.decode()
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert request(server, "GET", asset)[0] == 200, asset
    # Nothing from the network: no absolute URLs, and the browser is told so.
    assert "http://" not in html and "https://" not in html
    assert "default-src 'self'" in headers["content-security-policy"]


@pytest.mark.slow
def test_api_labels_equal_predicts(server, export_dir, test_images, predicted):
    """The 20 images through the API (half multipart, half raw bytes) get predict's labels."""
    class_names = (export_dir / "labels.txt").read_text().splitlines()
    labels = []
    for i, path in enumerate(test_images):
        status, _, result = post_image(server, path, as_multipart=i % 2 == 0)
        assert status == 200, result
        expected = predicted[str(path)]
        assert result["label"] == expected[0][0], path
        assert [t["label"] for t in result["top"][:3]] == [label for label, _ in expected]
        assert [round(t["probability"], 2) for t in result["top"][:3]] == [p for _, p in expected]
        assert result["verdict"] == verdict(result["label"], class_names)  # 10 classes: the name
        assert result["format"] == "int8" and result["model"].endswith("model_int8.tflite")
        assert result["latency_ms"] > 0 and len(result["top"]) == 5
        labels.append(result["label"])
    assert len(set(labels)) >= 3  # a model that answers one class would prove nothing


@pytest.mark.slow
def test_32_concurrent_requests(server, test_images, predicted):
    start = threading.Barrier(32)

    def one(i):
        start.wait()
        path = test_images[i % NUM_IMAGES]
        status, _, result = post_image(server, path, as_multipart=i % 2 == 1)
        return status, result.get("label"), predicted[str(path)][0][0]

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(32)))
    assert [status for status, _, _ in answers] == [200] * 32
    assert [label for _, label, _ in answers] == [expected for _, _, expected in answers]


BIG = b"\xff" * (12 * 1024 * 1024)  # 12 MB


def bad_requests():
    text = b"this is not an image\n" * 10
    svg = (ROOT / "lenet_keras" / "static" / "favicon.svg").read_bytes()
    no_file = ("--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--b--\r\n").encode()
    return {
        "text file (multipart)": ("POST", "/api/predict", *multipart(text, "notes.txt"), False, 400),
        "text (raw bytes)": ("POST", "/api/predict", text, {}, False, 400),
        "svg is not a raster image": ("POST", "/api/predict", svg, {}, False, 400),
        "truncated JPEG": ("POST", "/api/predict", b"\xff\xd8\xff\xe0" + b"\0" * 50, {}, False, 400),
        "empty body": ("POST", "/api/predict", b"", {}, False, 400),
        "multipart without a file": ("POST", "/api/predict", no_file,
                                     {"Content-Type": "multipart/form-data; boundary=b"}, False, 400),
        "12 MB raw": ("POST", "/api/predict", BIG, {}, False, 413),
        "12 MB multipart": ("POST", "/api/predict", *multipart(BIG, "huge.jpg"), False, 413),
        "12 MB chunked (no length)": ("POST", "/api/predict",
                                      (BIG[i: i + 2**20] for i in range(0, len(BIG), 2**20)),
                                      {}, True, 413),
        "unknown path": ("GET", "/nope", None, {}, False, 404),
        "outside static/": ("GET", "/static/../cli.py", None, {}, False, 404),
        "outside static/, encoded": ("GET", "/static/%2e%2e/%2e%2e/cli.py", None, {}, False, 404),
        "GET predict": ("GET", "/api/predict", None, {}, False, 405),
        "DELETE healthz": ("DELETE", "/healthz", None, {}, False, 405),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", list(bad_requests()))
def test_bad_input_gets_its_status_and_the_server_keeps_answering(server, test_images, case):
    method, path, body, headers, chunked, expected = bad_requests()[case]
    status, response_headers, result = request(server, method, path, body, headers, chunked)
    assert status == expected
    assert set(result) == {"error"} and "\n" not in result["error"] and result["error"]
    if expected == 400 and "multipart" not in case and "empty" not in case:
        assert "not a readable image" in result["error"]
    if expected == 413:
        assert f"{MAX_UPLOAD_BYTES // 2**20} MB limit" in result["error"]
    if expected == 405:
        assert set(response_headers["allow"].split(", ")) in ({"POST"}, {"GET", "HEAD"})
    assert server.process.poll() is None
    assert request(server, "GET", "/healthz")[0] == 200
    assert post_image(server, test_images[0])[0] == 200


@pytest.mark.slow
def test_one_log_line_per_request(server, test_images):
    marker = f"/no-such-page-{uuid.uuid4().hex}"
    assert request(server, "GET", marker)[0] == 404
    assert request(server, "GET", f"{marker}-%0Aforged%20200")[0] == 404  # no forged line
    status, _, result = post_image(server, test_images[1])
    assert status == 200

    def marked():
        return [line for line in server.log_lines() if marker in line]

    def predicted():
        return [line for line in server.log_lines()
                if "POST /api/predict 200 " in line and f" -> {result['label']} (" in line]

    # Each line is written just after its response went out: wait for the last one.
    deadline = time.monotonic() + 10
    while not (len(marked()) >= 2 and predicted()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(marked()) == 2
    assert f"GET {marker} 404 " in marked()[0]
    assert f"GET {marker}-%0Aforged%20200 404 " in marked()[1]
    assert not [line for line in server.log_lines() if line.startswith("forged")]
    assert predicted()


@pytest.mark.slow
def test_serves_a_keras_model_too_and_stops_cleanly(export_dir, test_images, tmp_path):
    """--model run/model.keras: Keras answers (one model behind a lock) equal predict's,
    under 8 concurrent requests; Ctrl-C stops it with exit 0."""
    from lenet_keras.predictors import load_predictor, read_image

    model = export_dir.parent / "run" / "model.keras"
    keras_model = load_predictor(model)  # what `predict --model model.keras` runs
    probabilities = keras_model.predict(
        np.stack([read_image(path, keras_model.input_shape) for path in test_images[:8]]))
    expected_labels = [keras_model.labels[i] for i in probabilities.argmax(1)]
    keras_server = Server("--model", model, log_path=tmp_path / "serve.log")
    try:
        assert request(keras_server, "GET", "/api/model")[2]["format"] == "keras"
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda path: post_image(keras_server, path), test_images[:8]))
        assert [status for status, _, _ in answers] == [200] * 8
        assert [result["label"] for _, _, result in answers] == expected_labels
        assert {result["format"] for _, _, result in answers} == {"keras"}
        # The heat map of a .keras model comes from Grad-CAM, for the predicted class.
        body, headers = multipart(Path(test_images[0]).read_bytes())
        status, _, heat = request(keras_server, "POST", "/api/explain", body, headers)
        assert status == 200 and heat["method"] == "gradcam"
        assert heat["label"] == expected_labels[0] and (heat["height"], heat["width"]) == (28, 28)
        assert len(heat["heatmap"]) == 28 * 28 and max(heat["heatmap"]) == 1.0
    finally:
        returncode = keras_server.stop()
    assert returncode == 0 and keras_server.stdout.decode().endswith("stopped\n")


def test_explain_on_a_tflite_model_is_occlusion(server, test_images, predicted):
    """/api/explain on the int8 .tflite: occlusion (forward passes only), the predicted
    class's heat map at the input size; a non-image is a 400 with one line."""
    body, headers = multipart(Path(test_images[1]).read_bytes())
    status, _, heat = request(server, "POST", "/api/explain", body, headers)
    assert status == 200, heat
    assert heat["method"] == "occlusion" and heat["label"] == predicted[str(test_images[1])][0][0]
    values = np.array(heat["heatmap"])
    assert values.shape == (28 * 28,) and values.min() >= 0 and values.max() == 1.0
    status, _, answer = request(server, "POST", "/api/explain", b"not an image",
                                {"Content-Type": "application/octet-stream"})
    assert status == 400 and "not a readable image" in answer["error"]


# ---------------------------------------------------------------------------------------
# Choosing the model, start-up errors
# ---------------------------------------------------------------------------------------


def test_default_model_is_the_latest_exports_int8_else_the_latest_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BadInput, match="nothing to serve"):
        resolve_model_path()
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "model.keras").write_bytes(b"")
    assert resolve_model_path() == Path("runs/r1/model.keras")
    old, new = tmp_path / "exports" / "old", tmp_path / "exports" / "new"
    for folder, files in ((old, ("model_int8.tflite",)),
                          (new, ("model_float32.tflite", "model_int8.tflite"))):
        folder.mkdir(parents=True)
        for name in (*files, "report.json", "labels.txt"):
            (folder / name).write_bytes(b"")
    os.utime(old / "report.json", (1e9, 1e9))
    assert resolve_model_path() == Path("exports/new/model_int8.tflite")
    (new / "model_int8.tflite").unlink()
    assert resolve_model_path() == Path("exports/new/model_float32.tflite")
    assert resolve_model_path(export_dir=old) == old / "model_int8.tflite"
    assert resolve_model_path(model="any.keras") == Path("any.keras")
    with pytest.raises(BadInput, match="not both"):
        resolve_model_path(model="a.tflite", export_dir=old)
    with pytest.raises(BadInput, match="holds no model"):
        resolve_model_path(export_dir=tmp_path / "runs")


def test_api_model_says_what_the_web_pages_model_computes_in():
    """web/model.tflite is int8 inside (quantized uint8 input, scale 1) or, where int8
    was the slower, float32 inside (raw uint8 pixels cast: scale 0)."""
    from lenet_keras.serve import quantization

    page = Path("exports/run/web/model.tflite")
    assert quantization(page, {"dtype": "uint8", "scale": 1.0}) == "full-integer int8"
    assert quantization(page, {"dtype": "uint8", "scale": 0.0}) == "none"
    assert quantization(Path("exports/run/model_int8.tflite"),
                        {"dtype": "int8", "scale": 1.0}) == "full-integer int8"


def test_verdict_says_x_or_not_x_for_a_positive_class_model():
    from lenet_keras.pipelines import binary_class_names

    labels = binary_class_names("hot_dog")
    assert verdict("hot_dog", labels) == "Hot dog!"
    assert verdict("not_hot_dog", labels) == "Not hot dog!"
    assert verdict("ankle_boot", ["sandal", "ankle_boot"]) == "Ankle boot"


@pytest.mark.parametrize("args, message", [
    (("--model", "missing.tflite"), "Error: model 'missing.tflite' does not exist"),
    (("--model", "a.tflite", "--export-dir", "b"), "Error: pass --model or --export-dir, not both"),
    ((), "Error: nothing to serve: no export in 'exports/' and no run in 'runs/'"),
])
def test_serve_start_errors_are_one_line(tmp_path, args, message):
    result = run_cli("serve", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message)


def test_listening_socket_is_tcp_so_asyncio_turns_nagle_off():
    """asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; a proto-0 socket made every
    keep-alive response wait ~40 ms for a delayed ACK."""
    from lenet_keras.serve import bind_socket, url_of

    with bind_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert url_of(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/"
        with socket.create_connection(sock.getsockname()):  # listening already
            pass


@pytest.mark.slow
def test_serve_on_a_taken_port_is_one_line(export_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--export-dir", export_dir, "--port", port)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; pass another --port")


# ---------------------------------------------------------------------------------------
# The page in a real browser
# ---------------------------------------------------------------------------------------


def chromium(window_size="900,1100"):
    """Headless Debian Chromium under Selenium, or a skip that says what is missing."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("no browser: apt-get install -y chromium chromium-driver")
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("pip install selenium for the browser test")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={window_size}",
                     "--force-prefers-reduced-motion"):
        options.add_argument(argument)
    # An explicit chromedriver path: Selenium Manager never tries to download one.
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))


@pytest.mark.slow
def test_page_in_headless_chromium(server, export_dir, test_images, predicted, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser = chromium()
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "model").text)
        assert "model_int8.tflite" in browser.find_element(By.ID, "model").text
        # Keyboard: the first Tab reaches the file chooser.
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert browser.switch_to.active_element.get_attribute("id") == "file"

        # A file that is not an image: a one-line error on the page, no verdict.
        text_file = tmp_path / "notes.txt"
        text_file.write_text("not an image")
        browser.find_element(By.ID, "file").send_keys(str(text_file))
        wait.until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert "not a readable image" in browser.find_element(By.ID, "error").text

        path = test_images[0]
        browser.find_element(By.ID, "file").send_keys(str(path))
        wait.until(lambda b: b.find_element(By.ID, "verdict").get_attribute("data-state")
                   not in ("idle", "busy"))
        expected = predicted[str(path)]
        class_names = (export_dir / "labels.txt").read_text().splitlines()
        assert browser.find_element(By.ID, "verdict").text == verdict(expected[0][0], class_names)
        assert not browser.find_element(By.ID, "error").is_displayed()
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars li")
        assert len(bars) == 5
        top_percent = float(bars[0].find_element(By.CLASS_NAME, "pct").text.rstrip("%"))
        assert abs(top_percent - expected[0][1] * 100) <= 0.5  # predict prints 2 decimals
        assert re.fullmatch(r"Inference \d+\.\d\d ms · model_int8\.tflite \(int8\)",
                            browser.find_element(By.ID, "timing").text)
        # The heat-map toggle lays the occlusion map over the photo, exactly on it.
        assert not browser.find_element(By.ID, "heat").is_displayed()
        browser.find_element(By.ID, "heat-toggle").click()
        wait.until(lambda b: b.find_element(By.ID, "heat").is_displayed())
        heat, photo = browser.find_element(By.ID, "heat"), browser.find_element(By.ID, "preview")
        assert heat.get_attribute("src").startswith("data:image/png")
        assert heat.rect == photo.rect
        assert "by occlusion" in browser.find_element(By.ID, "heat-note").text
        screenshot = tmp_path / "serve.png"
        assert browser.save_screenshot(str(screenshot))
    finally:
        browser.quit()
    with Image.open(screenshot) as image:
        assert image.size[0] >= 800 and np.asarray(image.convert("L")).std() > 10
    keep = os.environ.get("LENET_KERAS_SCREENSHOT_DIR")
    if keep:
        shutil.copy(screenshot, Path(keep) / "serve.png")
    print(f"screenshot: {screenshot}")
