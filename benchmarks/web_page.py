"""The `export --web` page, measured: agreement with `predict`, origin, offline, weight,
latency (the issue's "Must show").

    python benchmarks/web_page.py exports/<run>/ [--dataset /usr/share/datasets/fashion-mnist]
        [--images 50] [--json out.json]

On an export made with --web: hosts <export>/web with `python -m http.server`, opens it
in headless Chromium (Selenium) and reports

- agreement: the page's label (window.lenetKeras.classify) against `lenet-keras predict
  --model <export>/web/model.tflite` (a real process) on the first N test images of the
  run's dataset, saved as files (see tests/webpage.write_test_images), and how many of
  their model inputs (window.lenetKeras.preprocess) equal predict's decode_image exactly;
- origin: every request the page started (Chrome's performance log) and CSP violations;
- offline: after the service worker is active, DevTools offline and the server stopped,
  a reload still classifies;
- weight: the bytes http.server sent on the first visit (each file it served, summed),
  and the same files gzipped (what a host that compresses sends);
- latency: window.lenetKeras.benchmark() (the model alone in LiteRT.js, mean of 200
  calls in the fastest of 5 rounds) next to report.json's LiteRT latency of the same file
  in Python (1 thread).
"""

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import webpage  # noqa: E402


def predicted(paths, model):
    result = subprocess.run([sys.executable, "-m", "lenet_keras", "predict", *map(str, paths),
                             "--model", str(model), "--top-k", "5"], capture_output=True,
                            text=True, cwd=ROOT)
    if result.returncode:
        sys.exit(result.stderr)
    return webpage.predict_lines(result.stdout)


def first_load(server, folder):
    served = [(path, status) for path, status in server.requests() if status == 200]
    files = [folder / ("index.html" if path.endswith("/") else path.lstrip("/")) for path, _ in served]
    raw = sum(f.stat().st_size for f in files)
    packed = sum(len(gzip.compress(f.read_bytes(), 6)) for f in files)
    return {"requests": len(served), "files": sorted(str(f.relative_to(folder)) for f in files),
            "bytes": raw, "gzip_bytes": packed}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("--dataset", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="save the page on a phone-sized window (390x844) here")
    args = parser.parse_args()
    from lenet_keras.predictors import decode_image
    from lenet_keras.sources import load_arrays

    folder = args.export_dir / "web"
    report = json.loads((args.export_dir / "report.json").read_text())
    x_test = load_arrays(args.dataset).x_test
    scratch = Path(tempfile.mkdtemp(prefix="web-page-"))
    paths = webpage.write_test_images(x_test, scratch / "images", args.images)
    expected = predicted(paths, folder / "model.tflite")
    shape = tuple(json.loads((folder / "model.json").read_text())["input"]["shape"][1:])

    server = webpage.StaticServer(folder, scratch / "http.log")
    driver = webpage.chromium("390,844", mobile=True)
    results = {"cpu": cpu_name(), "export": str(args.export_dir), "images": len(paths)}
    try:
        driver.get(server.url)
        webpage.wait_ready(driver)
        agree = exact = 0
        for path in paths:
            data = path.read_bytes()
            page = webpage.classify(driver, data)
            agree += page["label"] == expected[str(path)][0][0]
            exact += np.array_equal(webpage.preprocess(driver, data),
                                    decode_image(data, shape).astype(np.uint8).reshape(-1))
        results["agreement"] = f"{agree}/{len(paths)}"
        results["inputs_equal_to_predicts"] = f"{exact}/{len(paths)}"
        results["first_load"] = first_load(server, folder)
        browser = webpage.call(driver, "return await window.lenetKeras.benchmark(200);")
        results["latency"] = {
            "litert_js_us": browser["latency_ms"] * 1000,
            "litert_python_us": report["formats"]["web"]["latency_us"],
            "int8_litert_python_us": report["formats"].get("int8", {}).get("latency_us"),
            "chromium": driver.capabilities.get("browserVersion"),
        }
        results["service_worker_active"] = webpage.service_worker_active(driver)
        if args.screenshot:
            screenshot(driver, paths[0], args.screenshot)
        origin = server.url.rstrip("/")
        requests = webpage.page_requests(driver)
        server.stop()
        webpage.go_offline(driver)
        driver.refresh()
        webpage.wait_ready(driver)
        offline = webpage.classify(driver, paths[0].read_bytes())
        results["offline_reload_label"] = offline["label"]
        results["offline_reload_agrees"] = offline["label"] == expected[str(paths[0])][0][0]
        requests += webpage.page_requests(driver)
        results["requests"] = len(requests)
        results["requests_outside_origin"] = sorted({u for u in requests if not (
            u.startswith(origin + "/") or u.startswith(("blob:", "data:")))})
        results["csp_violations"] = webpage.violations(driver)
    finally:
        driver.quit()
        server.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def screenshot(driver, path, out):
    """The page after choosing ``path`` with its file chooser, as a user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(driver, 60).until(
        lambda d: d.find_element(By.ID, "verdict").get_attribute("data-state") == "top")
    driver.save_screenshot(str(out))


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
