"""export --web: the folder, its model, and the page in headless Chromium hosted by a
plain `python -m http.server` (see webpage.py).

The page's labels equal `predict`'s on the same model file, its model inputs equal
predict's decode_image byte for byte, it makes no request outside its origin, it keeps
working after bad files, a 48-megapixel photo is classified without blocking the page,
and a reload with the network cut still classifies. `serve` serves the same app at /app/.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import webpage
from conftest import ROOT, run_cli_process as run_cli
from lenet_keras.serve import verdict
from lenet_keras.web import CSP, NOT_LOADED

NUM_IMAGES = 30
PHONE = "390,844"  # CSS pixels of a current phone


@pytest.fixture(scope="module")
def web_dir(micro_export):
    return micro_export[1] / "web"


# ---------------------------------------------------------------------------------------
# The folder and its report entry
# ---------------------------------------------------------------------------------------


def test_export_writes_a_static_app_whose_model_is_verified_like_every_format(micro_export):
    _, out, report, stdout = micro_export
    web = out / "web"
    for name in ("index.html", "app.js", "preprocess.js", "sw.js", "style.css",
                 "manifest.webmanifest", "model.tflite", "model.json", "labels.txt",
                 "icon-192.png", "icon-512.png", "litertjs/index.js", "litertjs/LICENSE",
                 "litertjs/litert_wasm_internal.wasm", "litertjs/litert_wasm_compat_internal.wasm"):
        assert (web / name).is_file(), name
    assert "Apache License" in (web / "litertjs" / "LICENSE").read_text()
    entry = report["formats"]["web"]
    assert entry["file"] == "web/model.tflite"
    assert entry["bytes"] == (web / "model.tflite").stat().st_size
    # The faster of the int8 and float32 files as timed here, behind a uint8 input: their
    # ops (and calibration), the same answers.
    assert entry["graph"] == report["int8_vs_float32"]["faster"]
    shipped = report["formats"][entry["graph"]]
    assert entry["test_accuracy"] == shipped["test_accuracy"]
    assert entry["input"]["dtype"] == "uint8" and entry["output"]["dtype"] == "float32"
    # int8 inside: quantized uint8 input, scale 1 (raw pixels); float32: a cast, no scale.
    assert entry["input"]["scale"] == (1.0 if entry["graph"] == "int8" else 0.0)
    assert entry["input"]["zero_point"] == 0
    assert entry["bytes"] < 1.1 * shipped["bytes"]
    assert entry["latency_us"] > 0 and entry["browser_runtime"] == "@litertjs/core 2.5.3"
    assert entry["first_load_gzip_bytes"] < entry["first_load_bytes"] < entry["folder_bytes"]
    assert any(line.startswith("web ") for line in stdout.splitlines())
    info = json.loads((web / "model.json").read_text())
    assert info["labels"] == (out / "labels.txt").read_text().splitlines()
    assert info["input"]["shape"] == [1, 28, 28, 1]
    html = (web / "index.html").read_text()
    assert f'content="{CSP}"' in html and "http" not in html.replace('http-equiv', '')
    manifest = json.loads((web / "manifest.webmanifest").read_text())
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    assert {icon["sizes"] for icon in manifest["icons"]} >= {"192x192", "512x512"}


def test_service_worker_precaches_every_file_but_the_runtime_variants(web_dir):
    sw = (web_dir / "sw.js").read_text()
    precache = json.loads(sw.split("const PRECACHE = ", 1)[1].split(";\n", 1)[0])
    assert {"./", "index.html", "app.js", "model.tflite", "model.json", "litertjs/index.js",
            "litertjs/wasm-utils.js", "preprocess.js", "manifest.webmanifest"} <= set(precache)
    assert not [name for name in precache if name.endswith(".wasm")]
    assert all((web_dir / name).is_file() for name in precache if name != "./")
    assert "{{" not in sw and "lenet-keras-web-" in sw


def test_vendored_litertjs_matches_its_lock():
    result = subprocess.run([sys.executable, ROOT / "tools" / "vendor_litertjs.py", "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lock = json.loads((ROOT / "lenet_keras" / "webapp" / "litertjs" / "VENDORED.json").read_text())
    assert lock["packages"]["@litertjs/core"]["version"] == "2.5.3"
    assert set(NOT_LOADED) - {"LICENSE", "VENDORED.json"} <= set(lock["files"])


def test_predict_runs_the_pages_model_file_with_its_labels(micro_export, tmp_path):
    _, out, report, _ = micro_export
    from lenet_keras.formats import get
    from lenet_keras.sources import load_arrays

    path = tmp_path / "shoe.png"
    Image.fromarray(load_arrays(None).x_test[0, :, :, 0]).save(path)
    web = run_cli("predict", path, "--model", out / "web" / "model.tflite")
    shipped = run_cli("predict", path, "--model", out / get(report["formats"]["web"]["graph"]).file)
    assert web.returncode == 0, web.stderr
    assert web.stdout.split(": ")[1].split()[0] == shipped.stdout.split(": ")[1].split()[0]


# ---------------------------------------------------------------------------------------
# The page in headless Chromium, hosted by python -m http.server
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_session(web_dir, tmp_path_factory):
    driver = webpage.chromium(PHONE, mobile=True)
    if driver is None:
        pytest.skip("no browser: apt-get install -y chromium chromium-driver")
    server = webpage.StaticServer(web_dir, tmp_path_factory.mktemp("web_http") / "http.log")
    try:
        driver.get(server.url)
        webpage.wait_ready(driver)
        yield driver, server
    finally:
        driver.quit()
        server.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory, micro_export):
    from lenet_keras.sources import load_arrays

    folder = tmp_path_factory.mktemp("web_images")
    paths = webpage.write_test_images(load_arrays(None).x_test, folder, NUM_IMAGES)
    result = run_cli("predict", *paths, "--model", micro_export[1] / "web" / "model.tflite",
                     "--top-k", 5)
    assert result.returncode == 0, result.stderr
    return paths, webpage.predict_lines(result.stdout)


@pytest.mark.slow
def test_page_answers_equal_predicts_and_its_inputs_are_predicts_pixels(browser_session, images):
    from lenet_keras.predictors import decode_image

    driver, _ = browser_session
    paths, expected = images
    agree = 0
    for path in paths:
        data = path.read_bytes()
        page = webpage.classify(driver, data)
        agree += page["label"] == expected[str(path)][0][0]
        assert [t["label"] for t in page["top"]][:1] == [page["label"]]
        assert len(page["top"]) == 5 and page["latency_ms"] >= 0
        # PNGs decode alike everywhere, and the resize and luma are PIL's to the byte.
        if path.suffix == ".png":
            wanted = decode_image(data, (28, 28, 1)).astype(np.uint8).reshape(-1)
            assert np.array_equal(webpage.preprocess(driver, data), wanted), path.name
    assert agree >= len(paths) - 1, f"{agree}/{len(paths)}"


@pytest.mark.slow
def test_where_int8_is_slower_the_page_runs_the_float32_graph_as_litert_does(
        tiny_run, tmp_path, monkeypatch):
    """The export's timing replaced (int8 23 us, float32 19 us): the page's model is the
    float32 graph behind the uint8 input, and LiteRT.js gives model_float32.tflite's
    probabilities for the same pixels."""
    import lenet_keras.export as export
    from lenet_keras.runtimes import TFLiteModel
    from lenet_keras.sources import load_arrays

    fake = {"int8": 23.0, "float32": 19.0}
    monkeypatch.setattr(export, "measure_latencies_us",
                        lambda calls, rounds=0, number=0: {n: fake.get(n, 50.0) for n in calls})
    out = tmp_path / "export"
    export.export_run(tiny_run, out, formats=("web",), calibration_samples=100,
                      latency_number=10, progress=False, log=lambda *_: None)
    driver = webpage.chromium(PHONE, mobile=True)
    if driver is None:
        pytest.skip("no browser: apt-get install -y chromium chromium-driver")
    server = webpage.StaticServer(out / "web", tmp_path / "http.log")
    x_test = load_arrays(None).x_test[:8]
    float32 = TFLiteModel(out / "model_float32.tflite").predict(x_test)
    try:
        driver.get(server.url)
        info = webpage.wait_ready(driver)
        assert (info["format"], info["input"]["dtype"]) == ("float32", "uint8")
        for i, path in enumerate(webpage.write_test_images(x_test, tmp_path / "images", 8)):
            if path.suffix != ".png" or i % 5 == 4:  # the model's own pixels only
                continue
            top = webpage.classify(driver, path.read_bytes())["top"]
            labels = info["labels"]
            assert top[0]["label"] == labels[int(float32[i].argmax())], path.name
            assert top[0]["probability"] == pytest.approx(float(float32[i].max()), abs=1e-5)
    finally:
        driver.quit()
        server.stop()


@pytest.mark.slow
def test_luma_equals_to_grayscale_on_random_colours(browser_session, tmp_path):
    from lenet_keras.predictors import decode_image

    driver, _ = browser_session
    colours = np.random.default_rng(0).integers(0, 256, (28, 28, 3), np.uint8)
    Image.fromarray(colours).save(tmp_path / "colours.png")
    data = (tmp_path / "colours.png").read_bytes()
    assert np.array_equal(webpage.preprocess(driver, data),
                          decode_image(data, (28, 28, 1)).astype(np.uint8).reshape(-1))


@pytest.mark.slow
def test_bad_files_get_one_line_and_the_page_keeps_working(browser_session, images, web_dir,
                                                          tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browser_session
    paths, expected = images
    wait = WebDriverWait(driver, 60)
    chooser = driver.find_element(By.ID, "file")
    for name, content, reason in (("notes.txt", b"not an image", "not a readable image file"),
                                  ("empty.png", b"", "the file is empty")):
        (tmp_path / name).write_bytes(content)
        chooser.send_keys(str(tmp_path / name))
        wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
        message = driver.find_element(By.ID, "error").text
        assert message == f"Could not classify {name}: {reason}.", message
        assert "\n" not in message
    chooser.send_keys(str(paths[0]))
    wait.until(lambda d: d.find_element(By.ID, "verdict").get_attribute("data-state") == "top")
    assert not driver.find_element(By.ID, "error").is_displayed()
    class_names = (web_dir / "labels.txt").read_text().splitlines()
    # serve's verdict, word for word
    assert driver.find_element(By.ID, "verdict").text == verdict(expected[str(paths[0])][0][0],
                                                                  class_names)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#bars li")) == 5
    timing = driver.find_element(By.ID, "timing").text
    graph = json.loads((web_dir / "model.json").read_text())["format"]  # int8 or float32
    assert timing.startswith("Inference ") and f"model.tflite ({graph})" in timing
    screenshot = tmp_path / "web-phone.png"
    assert driver.save_screenshot(str(screenshot))
    with Image.open(screenshot) as image:
        assert np.asarray(image.convert("L")).std() > 10
    keep = os.environ.get("LENET_KERAS_SCREENSHOT_DIR")
    if keep:
        shutil.copy(screenshot, Path(keep) / "web-phone.png")


@pytest.mark.slow
def test_live_camera_updates_the_verdict_a_few_times_a_second(browser_session):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = browser_session
    live = driver.find_element(By.ID, "live")
    assert live.is_displayed()
    # Count the verdict's updates (Chromium's synthetic camera) while the camera is on.
    driver.execute_script("""
        window.__updates = 0;
        new MutationObserver(() => window.__updates++).observe(
          document.getElementById("timing"), {childList: true, characterData: true, subtree: true});""")
    live.click()
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return window.__updates") >= 3)
    assert live.get_attribute("aria-pressed") == "true"
    assert driver.find_element(By.ID, "verdict").get_attribute("data-state") == "top"
    live.click()
    assert live.get_attribute("aria-pressed") == "false"
    assert not driver.find_element(By.ID, "video").is_displayed()
    assert not driver.find_element(By.ID, "error").is_displayed()


@pytest.mark.slow
def test_a_48_megapixel_photo_is_classified_without_blocking_the_page(browser_session, tmp_path):
    driver, _ = browser_session
    # A smooth 8000x6000 JPEG (a phone's 48 MP photo; small on disk, huge decoded).
    ramp = np.linspace(0, 255, 8000, dtype=np.float32)
    rows = np.linspace(0, 1, 6000, dtype=np.float32)[:, None]
    gray = (ramp[None, :] * rows).astype(np.uint8)
    Image.fromarray(gray).convert("RGB").save(tmp_path / "big.jpg", quality=80)
    data = (tmp_path / "big.jpg").read_bytes()
    # A timer on the page ticks while the photo is decoded and resized (in the worker).
    answer = webpage.call(driver, webpage.BLOB + """
        let ticks = 0;
        const timer = setInterval(() => ticks++, 20);
        try {
          const result = await window.lenetKeras.classify(blob);
          return {label: result.label, ticks, ms: result.preprocess_ms};
        } finally { clearInterval(timer); }""", base64.b64encode(data).decode())
    assert answer["label"]
    # At least one tick per 100 ms of preprocessing: the page never froze.
    assert answer["ticks"] >= max(3, answer["ms"] / 100), answer


@pytest.mark.slow
def test_no_request_leaves_the_origin_and_an_offline_reload_classifies(browser_session, images):
    driver, server = browser_session
    paths, expected = images
    assert webpage.service_worker_active(driver)
    origin = server.url.rstrip("/")
    requests = webpage.page_requests(driver)
    assert requests and all(url.startswith((origin + "/", "blob:", "data:")) for url in requests), [
        url for url in requests if not url.startswith(origin)]
    assert webpage.violations(driver) == []
    served = {path for path, _ in server.requests()}
    assert "/litertjs/litert_wasm_internal.wasm" in served and "/model.tflite" in served

    server.stop()  # the network cut twice over: DevTools offline and no server at all
    webpage.go_offline(driver)
    driver.refresh()
    webpage.wait_ready(driver)
    for path in paths[:3]:
        assert webpage.classify(driver, path.read_bytes())["label"] == expected[str(path)][0][0]
    assert webpage.violations(driver) == []


# ---------------------------------------------------------------------------------------
# serve: the same app at /app/
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_serves_the_app_at_app_with_its_headers(micro_export, tmp_path):
    from test_serve import Server

    served = Server("--export-dir", micro_export[1], log_path=tmp_path / "serve.log")
    try:
        with urllib.request.urlopen(f"{served.url}app/") as response:
            assert response.headers["Content-Security-Policy"] == CSP
            assert 'src="app.js"' in response.read().decode()
        wasm = f"{served.url}app/litertjs/litert_wasm_internal.wasm"
        with urllib.request.urlopen(wasm) as response:
            assert response.headers["Content-Type"] == "application/wasm"
            assert response.read()[:4] == b"\0asm"
        with urllib.request.urlopen(f"{served.url}") as response:  # serve's own page: its CSP
            assert "wasm-unsafe-eval" not in response.headers["Content-Security-Policy"]
    finally:
        returncode = served.stop()
    assert returncode == 0
    assert f"the in-browser app (export --web): {served.url}app/" in served.stdout.decode()
