"""Serve a model on a local web page and a JSON API: the "Not Hotdog" app, for real.

    lenet-keras serve                                  # the latest export's fastest .tflite
    lenet-keras serve --export-dir exports/my-run --port 8080
    lenet-keras serve --model runs/my-run/model.keras
    lenet-keras serve --model exports/my-run/model.onnx

Endpoints::

    GET  /              the page (static/index.html): choose, drop or shoot a photo
    POST /api/predict   raw image bytes or a multipart file -> {"label", "top", ...}
    POST /api/explain   the same -> {"method", "height", "width", "heatmap": [h*w, 0-1]}
    GET  /api/model     labels, input shape and dtype, format, quantization
    GET  /healthz       {"status": "ok"}
    GET  /static/...    the page's script, style and icon (nothing outside static/)
    GET  /app/          the export's web/ folder (export --web), when it has one: the
                        same page running the model in the browser with LiteRT.js

Why FastAPI on uvicorn: it is the stack most Python ML services use, maintained, ASGI
(so the upload size can be checked while the body streams in, before it is all read),
and its pieces are small: Starlette's router gives 404 and 405 for free, StaticFiles
refuses paths outside its folder, and uvicorn's h11 server needs no C extension.

Why a pool of predictors: a LiteRT interpreter holds its input and output tensors
inside itself ("no other function on this object should be called while invoke() has
not finished"), so two requests sharing one would mix up their images. Each request
borrows a whole predictor from a pool and gives it back. Interpreters release the GIL
while they run, so a pool of N uses N cores (ONNX Runtime sessions, one thread each, are
pooled alike: the format table's ``pooled``); a Keras or SavedModel model gets a pool of
one (a lock), because Keras does not promise a thread-safe ``predict`` and TensorFlow
already spreads one call over every core.

The image goes through ``predictors.decode_image``, the same code ``lenet-keras predict``
uses, so the page, the API and ``predict`` give the same answer for the same file.
"""

import asyncio
import json
import logging
import os
import queue
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput, first_line
from lenet_keras.exports import EXPORTS_ROOT, latest_export_dir, model_in_export
from lenet_keras.formats import named
from lenet_keras.web import CSP as APP_CSP

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MiB: any phone photo; refuse bigger with 413
# A multipart body carries the file plus a few hundred bytes of headers and boundaries.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
TOP_K = 5
MAX_POOL_SIZE = 4
# Decoding an image may take hundreds of MB (a 50-Mpixel PNG): at most this many at once;
# an upload waits up to DECODE_WAIT_SECONDS for a turn, then gets 503.
MAX_CONCURRENT_DECODES = 2
DECODE_WAIT_SECONDS = 30
# A client that sends its body slower than this (seconds between chunks) gets 408.
BODY_CHUNK_TIMEOUT_SECONDS = 15
# Connections served at once (uvicorn answers 503 beyond): bounds what slow clients hold.
MAX_CONNECTIONS = 256
# Host names always accepted; with --host 0.0.0.0 any IP address too (see allowed_hosts).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
STATIC_DIR = Path(__file__).resolve().parent / "static"
FLOAT_TENSOR = {"dtype": "float32", "scale": 0.0, "zero_point": 0}
# No CDN, no inline script: the page may only load what this server serves.
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
     b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
# Under /app/: the web app's own policy (its single-threaded wasm needs no cross-origin
# isolation, only wasm-unsafe-eval to compile), the same as its index.html's <meta>.
APP_PATH = "/app"
APP_HEADERS = [(b"content-security-policy", APP_CSP.encode()), *SECURITY_HEADERS[1:]]

log = logging.getLogger("lenet_keras.serve")


# ---------------------------------------------------------------------------------------
# Which model to serve
# ---------------------------------------------------------------------------------------


def resolve_model_path(model=None, export_dir=None):
    """The model file to serve: --model, else --export-dir's best file, else the latest
    export's, else the latest run's model.keras."""
    if model and export_dir:
        raise BadInput("pass --model or --export-dir, not both")
    if model:
        return Path(model)
    if export_dir:
        return model_in_export(export_dir)
    latest = latest_export_dir()
    if latest is not None:
        return model_in_export(latest)
    from lenet_keras.runs import latest_run_dir

    try:
        run_dir = latest_run_dir()
    except BadInput:
        raise BadInput(f"nothing to serve: no export in '{EXPORTS_ROOT}/' and no run in "
                       "'runs/'; train one with: lenet-keras fit") from None
    if not (run_dir / "model.keras").is_file():
        raise BadInput(f"run '{run_dir}' has no model.keras yet; pass --model or --export-dir")
    return run_dir / "model.keras"


def model_format(path, predictor):
    """The format table's name for an export's own file ('int8', 'onnx', 'saved_model',
    ...); for a file under another name, its runtime's format ('keras', 'onnx', ...), and
    for a .tflite 'int8' (integer input) or 'tflite'."""
    fmt = named(path)
    if fmt is not None and fmt.predictor is not None:
        return fmt.name
    if Path(path).suffix == ".tflite":
        return "int8" if predictor.quantized_input else "tflite"
    return predictor.format.name


def quantization(path, input_info):
    """What /api/model says of the model's numbers: its row's words, else (a .tflite
    under another name, or the web page's model: int8 or float32 inside) from its input
    tensor (uint8 raw pixels, scale 0, feed a float graph)."""
    fmt = named(path)
    if fmt is not None and fmt.predictor is not None and fmt.quantization is not None:
        return fmt.quantization
    integer = np.dtype(input_info["dtype"]).kind in "iu" and input_info.get("scale")
    return "full-integer int8" if integer else "none"


def web_folder(path):
    """The web app (export --web) beside a served model: the export's web/ folder, or the
    folder of web/model.tflite itself; None when there is none."""
    path = Path(path)
    for folder in (path.parent / "web", path.parent):
        if (folder / "index.html").is_file() and (folder / "model.json").is_file():
            return folder
    return None


# ---------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------


def positive_class(labels):
    """X for a one-vs-rest model trained with ``--positive-class X`` (labels
    ``[not_X, X]``, see ``data.binary_class_names``), else None."""
    if len(labels) == 2 and labels[0] == f"not_{labels[1]}":
        return labels[1]
    return None


def display_name(label):
    """'ankle_boot' -> 'Ankle boot'."""
    text = label.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def verdict(label, labels):
    """What the page shows in large letters: 'Hot dog!' / 'Not hot dog!' for a
    one-vs-rest model, else the class name ('Ankle boot')."""
    positive = positive_class(labels)
    if positive is None:
        return display_name(label)
    name = display_name(positive)
    return f"{name}!" if label == positive else f"Not {name[:1].lower() + name[1:]}!"


# ---------------------------------------------------------------------------------------
# The model behind the API
# ---------------------------------------------------------------------------------------


class PredictorPool:
    """Predictors that each serve one request at a time (see the module docstring)."""

    def __init__(self, predictors):
        self.size = len(predictors)
        self._idle = queue.Queue()
        for predictor in predictors:
            self._idle.put(predictor)

    @contextmanager
    def borrow(self):
        predictor = self._idle.get()  # blocks while all are busy
        try:
            yield predictor
        finally:
            self._idle.put(predictor)


def release_free_memory():
    """Hand freed heap memory back to the system (glibc's malloc_trim): Pillow decodes in
    16 MB blocks that glibc keeps in per-thread arenas, so a few big uploads left serve
    at gigabytes of RSS long after they were answered. A no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ModelService:
    """A loaded model: ``describe()`` for /api/model, ``classify(bytes)`` for /api/predict.

    Args:
        path: any model file of the format table (.tflite, .onnx, .keras, SavedModel).
        safe_mode: load a .keras file in Keras safe mode.
        pool_size: LiteRT interpreters (default: the CPU count, at most 4).
    """

    def __init__(self, path, safe_mode=True, pool_size=None):
        from lenet_keras.predictors import load_predictor
        from lenet_keras.quiet import native_output_captured

        self.path = Path(path)
        self.web_dir = web_folder(self.path)
        with native_output_captured("loading the model"):  # TF's and LiteRT's C++ chatter
            first = load_predictor(self.path, safe_mode=safe_mode)
            # The table says which runtimes take one request at a time (a pool of them).
            size = (pool_size or min(MAX_POOL_SIZE, os.cpu_count() or 1)) if first.format.pooled else 1
            predictors = [first] + [load_predictor(self.path, safe_mode=safe_mode)
                                    for _ in range(size - 1)]
            self.input_shape = tuple(int(d) for d in first.input_shape)
            # One call on a blank image checks the model runs (and warms Keras up).
            num_classes = first.predict(np.zeros((1, *self.input_shape), np.float32)).shape[-1]
        self.pool = PredictorPool(predictors)
        self._decodes = threading.BoundedSemaphore(MAX_CONCURRENT_DECODES)
        self.format = model_format(self.path, first)
        labels = first.labels
        if not labels or len(labels) != num_classes:
            labels = [f"class_{i}" for i in range(num_classes)]
        self.labels = labels
        # Keras and SavedModel predictors take and give float32, with no quantization.
        self.input_info = getattr(first, "input_info", FLOAT_TENSOR)
        self.output_info = getattr(first, "output_info", FLOAT_TENSOR)

    def describe(self):
        """What GET /api/model returns."""
        def tensor(info, shape):
            quantized = np.dtype(info["dtype"]).kind in "iu"
            return {"shape": list(shape), "dtype": info["dtype"],
                    "scale": info["scale"] if quantized else None,
                    "zero_point": info["zero_point"] if quantized else None}

        return {
            "model": self.path.name,  # never the absolute path: the page is reachable by others
            "format": self.format,
            "quantization": quantization(self.path, self.input_info),
            "labels": self.labels,
            "positive_class": positive_class(self.labels),
            "input": tensor(self.input_info, self.input_shape),
            "output": tensor(self.output_info, [len(self.labels)]),
            "interpreters": self.pool.size,
            "max_upload_bytes": MAX_UPLOAD_BYTES,
        }

    def decode(self, data):
        """Image bytes -> the model's input pixels, at most MAX_CONCURRENT_DECODES at once
        (ServerBusy after DECODE_WAIT_SECONDS). Raises BadInput for a non-image."""
        from lenet_keras.predictors import decode_image

        if not self._decodes.acquire(timeout=DECODE_WAIT_SECONDS):
            raise ServerBusy(f"busy: {MAX_CONCURRENT_DECODES} images are being decoded; "
                             "retry in a few seconds")
        try:  # the one decoder (sources.open_image) turns every failure into BadInput
            return decode_image(data, self.input_shape, name="the upload")
        finally:
            self._decodes.release()
            release_free_memory()

    def classify(self, data):
        """Image bytes -> the /api/predict answer. Raises BadInput for a non-image."""
        from lenet_keras.predictors import top_k

        pixels = self.decode(data)
        with self.pool.borrow() as predictor:
            start = time.perf_counter()
            probabilities = predictor.predict(pixels[None])[0]
            seconds = time.perf_counter() - start
        ranked = top_k(probabilities, self.labels, min(TOP_K, len(self.labels)))
        label = ranked[0][0]
        return {
            "label": label,
            "verdict": verdict(label, self.labels),
            "top": [{"label": name, "probability": round(p, 6)} for name, p in ranked],
            "model": self.path.name,
            "format": self.format,
            "latency_ms": round(seconds * 1000, 3),
        }


def explain_upload(service, data):
    """Image bytes -> the /api/explain answer: a heat map of the predicted class at the
    model's input size (the photo is stretched to it, so it overlays the whole photo):
    Grad-CAM for a Keras model, occlusion (forward passes only) for any other file."""
    from lenet_keras.explaining import explain, gradcam_stage, load_explainable

    pixels = service.decode(data)  # the same bounded decoder as /api/predict
    with service.pool.borrow() as predictor:
        model, forward, _ = load_explainable(predictor)
        method = "occlusion"
        if model is not None:
            try:
                gradcam_stage(model)
                method = "gradcam"
            except BadInput:  # no convolution (mlp)
                method = "saliency"
        probabilities = forward(pixels[None])[0]
        heat = explain(predictor, pixels[None], method=method)[0]
    index = int(probabilities.argmax())
    return {"label": service.labels[index], "probability": round(float(probabilities[index]), 6),
            "method": method, "height": int(heat.shape[0]), "width": int(heat.shape[1]),
            "heatmap": [round(float(v), 3) for v in heat.ravel()]}


def explain_endpoint(service):
    """The POST /api/explain handler: read_upload, then explain_upload on a worker thread."""
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    async def explain(request: Request):
        data = await read_upload(request)
        try:
            result = await run_in_threadpool(explain_upload, service, data)
        except BadInput as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except ServerBusy as error:
            return JSONResponse({"error": str(error)}, status_code=503,
                                headers={"Retry-After": "5"})
        request.state.log_note = f"-> {result['method']} heat map of {result['label']}"
        return result

    return explain


# ---------------------------------------------------------------------------------------
# ASGI middleware: upload size limit, one log line per request
# ---------------------------------------------------------------------------------------


async def _send_json_error(send, status, message):
    """A whole {"error": message} response, for middleware that answers by itself."""
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class UploadTooLarge(Exception):
    pass


class UploadTooSlow(Exception):
    pass


class ServerBusy(Exception):
    """Every decoding slot stayed busy: 503, try again."""


class UploadLimit:
    """413 for a request body over ``max_bytes``: at once from its Content-Length header,
    or as soon as a streamed (chunked) body passes the limit, before it is all read."""

    def __init__(self, app, max_bytes):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"upload over the {MAX_UPLOAD_BYTES // 2**20} MB limit"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _send_json_error(send, 413, f"{message} ({int(length):,} bytes)")
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            try:
                event = await asyncio.wait_for(receive(), BODY_CHUNK_TIMEOUT_SECONDS)
            except asyncio.TimeoutError:
                raise UploadTooSlow from None
            received += len(event.get("body", b""))
            if received > self.max_bytes:
                raise UploadTooLarge
            return event

        async def tracked_send(event):
            nonlocal started
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except UploadTooLarge:
            if not started:
                await _send_json_error(send, 413, message)
        except UploadTooSlow:
            if not started:
                await _send_json_error(send, 408, f"no data for {BODY_CHUNK_TIMEOUT_SECONDS} s: "
                                                  "upload timed out")


def _host_name(header):
    """The name of a Host header, lower case, without its port ('[::1]:80' -> '::1')."""
    host = header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name):
    import ipaddress

    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def allowed_hosts(host):
    """The Host names ``serve --host HOST`` answers: the loopback names, HOST itself, and
    on a wildcard address (0.0.0.0, ::) any IP address plus this machine's names. A web
    page that makes its own name point at 127.0.0.1 (DNS rebinding) is refused."""
    names = set(LOOPBACK_NAMES) | {host.lower().strip("[]")}
    if host in ("0.0.0.0", "::", ""):
        names |= {socket.gethostname().lower(), socket.getfqdn().lower(), "*ip*"}
    return frozenset(names)


class HostCheck:
    """400 for a request whose Host header is not one this server listens on."""

    def __init__(self, app, hosts):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.hosts is not None:
            name = _host_name(dict(scope["headers"]).get(b"host", b"").decode("latin-1"))
            if name not in self.hosts and not ("*ip*" in self.hosts and _is_ip(name)):
                return await _send_json_error(send, 400, f"unknown Host '{name[:60]}': this "
                                                         "server answers its own address only")
        return await self.app(scope, receive, send)


class RequestLog:
    """One log line per request (client, method, path, status, time, note) and the
    security headers on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what the client sees if the app raises before responding

        async def logged_send(event):
            nonlocal status
            if event["type"] == "http.response.start":
                status = event["status"]
                extra = APP_HEADERS if scope["path"].startswith(APP_PATH + "/") else SECURITY_HEADERS
                event = {**event, "headers": [*event.get("headers", []), *extra]}
            await send(event)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            client = scope.get("client") or ("-", 0)
            # The path as sent, still percent-encoded: a decoded %0A would split the line.
            path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            note = (scope.get("state") or {}).get("log_note", "")
            log.info("%s %s %s %d %.1f ms%s", client[0], scope["method"], path,
                     status, (time.perf_counter() - start) * 1000, f" {note}" if note else "")


# ---------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------


async def read_upload(request):
    """The image bytes of a request: its one multipart file, or the raw body."""
    from starlette.datastructures import UploadFile
    from starlette.exceptions import HTTPException

    # Media types are case-insensitive (RFC 9110): Multipart/Form-Data is multipart too.
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=16)
        try:
            files = [v for v in form.values() if isinstance(v, UploadFile)]
            if not files:
                raise HTTPException(400, "the multipart request has no file; send the image "
                                         "as a file field, e.g. curl -F file=@photo.jpg")
            data = await files[0].read()
        finally:
            await form.close()
    else:
        data = await request.body()
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"upload over the {MAX_UPLOAD_BYTES // 2**20} MB limit "
                                 f"({len(data):,} bytes)")
    if not data:
        raise HTTPException(400, "empty request: send image bytes, or a multipart file")
    return data


async def answer_upload(service, request):
    """POST /api/predict: the upload classified, or an error with its status."""
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

    try:
        data = await read_upload(request)
    except ClientDisconnect:  # nobody to answer: one log line, no traceback
        request.state.log_note = "client disconnected during the upload"
        return JSONResponse({"error": "client disconnected"}, status_code=400)
    try:
        # Decoding and inference block: run them on a worker thread, not the event loop.
        result = await run_in_threadpool(service.classify, data)
    except BadInput as error:
        request.state.log_note = "not an image"
        return JSONResponse({"error": str(error)}, status_code=400)
    except ServerBusy as error:
        request.state.log_note = "busy"
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "5"})
    request.state.log_note = f"-> {result['label']} ({result['latency_ms']:.2f} ms)"
    return result


def create_app(service, hosts=None):
    """The FastAPI app serving ``service`` (a ModelService) and the static page; with
    ``hosts`` (``allowed_hosts``), only requests naming one of them."""
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException

    # No /docs or /redoc: FastAPI's pages load Swagger UI from a CDN.
    app = FastAPI(title="lenet_keras serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        messages = {
            404: f"no such path: {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}"
                 + (f"; use {error.headers['Allow']}" if error.headers and
                    "Allow" in error.headers else ""),
        }
        message = error.detail if error.status_code not in messages else messages[error.status_code]
        return JSONResponse({"error": " ".join(str(message).split())},
                            status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def internal_error(request, error):
        return JSONResponse({"error": f"internal error: {type(error).__name__}: "
                                      f"{first_line(error)}"},
                            status_code=500)

    @app.api_route("/", methods=["GET", "HEAD"])
    async def page():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_info():
        return service.describe()

    @app.post("/api/predict")
    async def predict(request: Request):
        return await answer_upload(service, request)

    app.post("/api/explain")(explain_endpoint(service))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if service.web_dir is not None:
        app.mount(APP_PATH, StaticFiles(directory=service.web_dir, html=True), name="app")
    app.add_middleware(UploadLimit, max_bytes=MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES)
    app.add_middleware(HostCheck, hosts=hosts)
    app.add_middleware(RequestLog)  # added last: outermost, so it logs every response
    return app


# ---------------------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------------------


def bind_socket(host, port):
    """A listening socket on host:port (port 0: a free one); BadInput if taken.

    It listens at once, so a client that reads the printed URL can connect straight away
    (the connection waits in the backlog until uvicorn's loop accepts it)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    except socket.gaierror as error:
        raise BadInput(f"--host '{host}' is not an address of this machine ({error.strerror})") from None
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto is IPPROTO_TCP; with proto 0 every keep-alive response waited ~40 ms for an ACK.
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        hint = "; pass another --port" if error.errno == 98 else ""
        raise BadInput(f"cannot listen on {host}:{port}: {error.strerror}{hint}") from None
    sock.listen(128)
    return sock


def url_of(sock):
    """The URL to open: a wildcard address (0.0.0.0, ::) is no place to go, so this
    machine's loopback address instead."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def run_server(model=None, export_dir=None, host="127.0.0.1", port=8000, safe_mode=True,
               echo=None):
    """Load the model, bind host:port and serve until Ctrl-C.

    Args:
        model: a .tflite, .keras or SavedModel path (default: see ``resolve_model_path``).
        export_dir: serve this export's best file (``exports.model_in_export``: the
            fastest .tflite its report.json timed, int8 first where none was).
        host, port: where to listen (127.0.0.1 unless you mean to share it; port 0 picks a
            free port and prints it).
        safe_mode: load a .keras file in Keras safe mode.
        echo: callable for the start-up lines (the URL and the model).
    """
    import uvicorn

    echo = echo or (lambda line: print(line, flush=True))
    path = resolve_model_path(model, export_dir)
    service = ModelService(path, safe_mode=safe_mode)
    sock = bind_socket(host, port)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # python-multipart logs malformed bodies (already answered 400) through the root logger.
    logging.getLogger("python_multipart").setLevel(logging.CRITICAL)
    classes = ", ".join(service.labels[:4]) + (", ..." if len(service.labels) > 4 else "")
    echo(f"serving {path} ({service.format}, {len(service.labels)} classes: {classes})")
    if host not in ("127.0.0.1", "localhost", "::1"):
        echo(f"listening on {host}: anyone who can reach this machine can use it")
    echo(f"open {url_of(sock)}  (Ctrl-C to stop)")
    if service.web_dir is not None:
        echo(f"the in-browser app (export --web): {url_of(sock)}app/")
    # uvicorn's own access log is off: RequestLog writes one line per request instead.
    config = uvicorn.Config(create_app(service, allowed_hosts(host)), log_level="warning",
                            access_log=False, lifespan="off", server_header=False,
                            limit_concurrency=MAX_CONNECTIONS)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown
        pass
    echo("stopped")
