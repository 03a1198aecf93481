"""export --web: the app that runs on the phone, a folder any static file server hosts.

    exports/<run>/web/
        index.html              the page (same look and verdict as ``serve``'s), its CSP
        app.js, preprocess.js   LiteRT.js in the page; decoding and resizing in a worker
        style.css, icon*.{svg,png}, manifest.webmanifest
        sw.js                   service worker: every file cached, works offline
        model.tflite            uint8 raw pixels in, float32 probabilities out; int8
                                inside, or float32 where int8 is the slower here
        model.json              what the page needs to know (labels, input tensor, names)
        labels.txt
        litertjs/               LiteRT.js (npm @litertjs/core), vendored, with its LICENSE

Why a folder inside the export (the format table's ``web`` row) and not a command of its
own: the page is one more way the exported model ships, so it is made by the same loop,
from the same calibration as model_int8.tflite, and its model file is verified and timed
in report.json like every other format (``predict --model .../web/model.tflite`` runs it).

Which graph: the faster of model_int8.tflite and model_float32.tflite as the export timed
them (``job.fastest``: ``formats.by_speed``, the choice ``serve`` makes), so the row needs
both and is made after they are timed. LiteRT.js in the browser is another runtime than
LiteRT on this CPU, but the same XNNPACK kernels decide there (its wasm build).

Why vendored: a Python user never needs npm or a network to export; the runtime is
pinned (lenet_keras/webapp/litertjs/VENDORED.json, refreshed by
tools/vendor_litertjs.py from the npm registry) and costs the wheel ~6 MB compressed.

    python -m http.server -d exports/<run>/web 8080     # then open http://localhost:8080/
"""

import gzip
import hashlib
import json
import shutil
from pathlib import Path

from lenet_keras import convert
from lenet_keras.runtimes import TFLiteModel

APP_DIR = Path(__file__).resolve().parent / "webapp"
STYLE_BASE = Path(__file__).resolve().parent / "static" / "style.css"
RUNTIME = "litertjs"
MODEL_FILE = "model.tflite"
# Copied as they are; index.html, sw.js and style.css are written from templates.
PAGE_FILES = ("app.js", "preprocess.js", "icon.svg", "icon-192.png", "icon-512.png")
# The page's Content-Security-Policy (a <meta> in index.html, a header under serve's
# /app/): this folder's files only. wasm-unsafe-eval lets LiteRT.js compile its .wasm
# (it runs no eval); blob: and mediastream: are the page's own photos and camera.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
       "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
       "connect-src 'self' blob:; worker-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'none'")
# LiteRT.js loads one wasm variant: relaxed SIMD where the browser has it, else compat.
# The first load of a relaxed-SIMD browser fetches every file but these.
NOT_LOADED = ("LICENSE", "VENDORED.json", "litert_wasm_compat_internal.js",
              "litert_wasm_compat_internal.wasm")


def runtime_version():
    lock = json.loads((APP_DIR / RUNTIME / "VENDORED.json").read_text())
    return lock["packages"]["@litertjs/core"]["version"]


def _tensor(info):
    return {"shape": [1, *info["shape"][1:]], "dtype": info["dtype"], "scale": info["scale"],
            "zero_point": info["zero_point"]}


# model.json's words for each graph the page may ship.
QUANTIZATION = {"int8": "full-integer int8 (uint8 pixels in, float32 probabilities out)",
                "float32": "none: float32 inside (uint8 pixels in, float32 probabilities out)"}


def _model_json(job, content, labels, graph):
    runner = TFLiteModel(content)
    return {
        "name": job.summary,
        "model": MODEL_FILE,
        "format": graph,
        "quantization": QUANTIZATION[graph],
        "labels": labels,
        "input": _tensor(runner.input_info),
        "output": _tensor(runner.output_info),
        "runtime": "@litertjs/core",
        "runtime_version": runtime_version(),
    }


def _manifest(summary):
    return {
        "name": f"What is it? ({summary})",
        "short_name": "What is it?",
        "description": f"{summary}, classifying photos on this device with LiteRT.js.",
        "start_url": "./",
        "scope": "./",
        "display": "standalone",
        "background_color": "#f6f7f9",
        "theme_color": "#1d4ed8",
        "icons": [
            {"src": "icon-192.png", "sizes": "192x192", "type": "image/png"},
            {"src": "icon-512.png", "sizes": "512x512", "type": "image/png"},
            {"src": "icon.svg", "sizes": "any", "type": "image/svg+xml"},
        ],
    }


def _html_escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _service_worker(folder):
    """sw.js: precache the page and the model (not the wasm variants: the page's first
    load caches the one it uses); the cache is named after the digest of every file."""
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for name in files:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    precache = ["./"] + [name for name in files
                         if not name.endswith((".wasm", "_internal.js", "LICENSE", ".json"))
                         or name in ("model.json",)]
    text = (APP_DIR / "sw.js").read_text()
    text = text.replace("{{CACHE}}", f"lenet-keras-web-{digest.hexdigest()[:16]}")
    text = text.replace("{{PRECACHE}}", json.dumps(precache))
    (folder / "sw.js").write_text(text)


def first_load(folder):
    """(bytes, gzipped bytes) of the files a browser with relaxed SIMD fetches on its
    first visit (what a static host sends uncompressed, and with gzip)."""
    raw = packed = 0
    for path in Path(folder).rglob("*"):
        if path.is_file() and path.name not in NOT_LOADED:
            data = path.read_bytes()
            raw += len(data)
            packed += len(gzip.compress(data, 6))
    return raw, packed


def web_app(job, fmt):
    """The format table's converter for ``web``: writes the folder, returns (the model
    file, extra report fields)."""
    # int8 unless the export timed it slower than float32 (then both were timed).
    graph = job.fastest(tuple(QUANTIZATION))
    content, used = convert.web_model_bytes(job, graph)
    folder = job.staging / Path(fmt.file).parent
    folder.mkdir()
    shutil.copytree(APP_DIR / RUNTIME, folder / RUNTIME)
    for name in PAGE_FILES:
        shutil.copyfile(APP_DIR / name, folder / name)
    (folder / "style.css").write_text(STYLE_BASE.read_text() + (APP_DIR / "app.css").read_text())
    (folder / MODEL_FILE).write_bytes(content)
    labels = list(job.describe["labels"])
    (folder / "labels.txt").write_text("\n".join(labels) + "\n")
    (folder / "model.json").write_text(json.dumps(_model_json(job, content, labels, graph),
                                                  indent=2))
    (folder / "manifest.webmanifest").write_text(json.dumps(_manifest(job.summary), indent=2))
    html = (APP_DIR / "index.html").read_text().replace("{{CSP}}", CSP)
    (folder / "index.html").write_text(html.replace("{{TITLE}}", _html_escape(
        f"What is it? · {job.summary}")))
    _service_worker(folder)
    raw, packed = first_load(folder)
    return folder / MODEL_FILE, {
        "file": f"{folder.name}/{MODEL_FILE}",
        "folder_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
        "first_load_bytes": raw,
        "first_load_gzip_bytes": packed,
        "browser_runtime": f"@litertjs/core {runtime_version()}",
        "graph": graph,  # int8 or float32 inside, the faster here
        "folded_columns": used,
    }
