"""The export formats, as data: one row per format (as Ultralytics' ``export_formats()``).

Everything that depends on which formats exist reads this table: ``export`` (what it
writes, in which order, and how it verifies and times each file), ``predictors.
load_predictor`` (which runtime opens a file), ``exports.model_in_export`` and ``serve``
(which file of an export folder to serve, and the name it is shown under) and the CLI
(``export --quantize`` choices, ``--tflite``, ``--micro``, ``--onnx`` and their help).

Adding a format is one row here plus its converter function (``convert.py``), and a
runtime class (``runtimes.py``) if no existing one runs it.

    >>> [f.name for f in FORMATS]
    ['keras', 'saved_model', 'float32', 'dynamic', 'float16', 'int8', 'mediapipe', 'onnx', 'web', 'micro']
    >>> for_path("exports/run/model_int8.tflite").predictor
    <class 'lenet_keras.runtimes.TFLiteModel'>
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from lenet_keras import convert, micro, runtimes, web
from lenet_keras.backends import module_available
from lenet_keras.errors import BadInput


@dataclass(frozen=True)
class Format:
    """One export format.

    name: its report key and ``--quantize`` name.
    file: its file (or folder) in an export directory (``model.keras``: the run's own).
    convert: ``convert(job, fmt)`` writes it into the staging folder and returns (path,
        extra report fields); for a ``section`` format, the report section itself.
    predictor: the ``runtimes`` class ``load_predictor`` and ``serve`` run the file with
        (None: not a model one can run on a host).
    runtime: the report's ``runtime`` name.
    verifier: the class ``export`` checks and times the file with (default: predictor).
    help: one line for the CLI's help.
    always: written by every export; choice: named in ``--quantize``; tflite: in
        ``--tflite``'s set; flag: a CLI switch of its own (``--micro``) that adds it.
    needs: formats written before it (switched on with it).
    after_timing: converted once the formats before it are verified and timed (its
        converter reads their latencies, ``job.latencies``), then timed itself.
    calibrated: converted with calibration images (training split).
    section: "formats" (an entry of report["formats"]), or a top-level report key.
    timing: "reference" (alone, a tenth of the calls: slow Python-level calls),
        "shared" (single-threaded runtimes taking turns round by round, so a busy spell
        on a shared CPU hits all alike) or "alone" (a runtime with threads of its own).
    timing_note: how one call is timed, for report["latency"].
    serve_rank: preference when serving an export folder, 1 first (None: never picked),
        where report.json has no latency to choose by (``by_speed``).
    pooled: ``serve`` keeps a pool of predictors (one request each, GIL released).
    quantization: what ``serve``'s /api/model says of its numbers (None: the file's
        input tensor says).
    packages: modules it needs beyond the base install; extra: the pip extra with them.
    """

    name: str
    file: str
    convert: Callable
    predictor: Optional[type]
    runtime: str
    help: str
    verifier: Optional[type] = None
    always: bool = False
    choice: bool = False
    tflite: bool = False
    flag: Optional[str] = None
    needs: tuple = ()
    after_timing: bool = False
    calibrated: bool = False
    section: str = "formats"
    timing: str = "shared"
    timing_note: str = ""
    serve_rank: Optional[int] = None
    pooled: bool = False
    quantization: Optional[str] = "none"
    packages: tuple = ()
    extra: Optional[str] = None

    @property
    def suffix(self):
        """'.tflite', '.onnx', ...; '/' for a folder."""
        return Path(self.file).suffix or "/"

    @property
    def checker(self):
        return self.verifier or self.predictor


_LITERT = dict(convert=convert.tflite_file, predictor=runtimes.TFLiteModel, runtime="litert",
               choice=True, tflite=True, pooled=True, timing_note="LiteRT, 1 thread")

FORMATS = (
    Format("keras", "model.keras", convert.keras_file, runtimes.KerasPredictor, "keras",
           "the trained Keras model, the reference every format is compared with",
           always=True, timing="reference", timing_note="model(image)"),
    Format("saved_model", "saved_model", convert.saved_model_file, runtimes.SavedModelPredictor,
           "tensorflow", "TensorFlow SavedModel, dynamic batch, for TF Serving", always=True,
           timing="reference", timing_note="its serve endpoint", serve_rank=6),
    Format("float32", "model_float32.tflite", help="LiteRT, float32", serve_rank=4, **_LITERT),
    Format("dynamic", "model_dynamic.tflite", help="LiteRT, int8 weights, float activations",
           serve_rank=3, quantization="dynamic-range int8 weights", **_LITERT),
    Format("float16", "model_float16.tflite", help="LiteRT, float16 weights", serve_rank=2,
           quantization="float16 weights", **_LITERT),
    Format("int8", "model_int8.tflite", help="LiteRT, full integer (int8 in and out)",
           serve_rank=1, calibrated=True, quantization="full-integer int8", **_LITERT),
    Format("mediapipe", "model_mediapipe.tflite", convert.mediapipe_file, runtimes.TFLiteModel,
           "mediapipe", "for MediaPipe Tasks' ImageClassifier as it is (RGB uint8 in)",
           verifier=runtimes.MediaPipeModel, always=True, timing="alone", pooled=True,
           timing_note="ImageClassifier.classify on a uint8 RGB image, its own "
                       "preprocessing and threads"),
    Format("onnx", "model.onnx", convert.onnx_file, runtimes.OnnxModel, "onnxruntime",
           'Also write model.onnx (ONNX Runtime; needs pip install "lenet-keras[onnx]").',
           choice=True, flag="--onnx", timing_note="ONNX Runtime, 1 thread", serve_rank=5,
           pooled=True, packages=("onnx", "onnxruntime", "tf2onnx"), extra="onnx"),
    Format("web", "web/model.tflite", web.web_app, runtimes.TFLiteModel, "litert",
           "Also write web/: a page that classifies in the browser with LiteRT.js, offline "
           "and installable, for any static host (its model: uint8 in, the faster of int8 "
           "and float32 here inside; implies both).",
           flag="--web", needs=("float32", "int8"), after_timing=True, calibrated=True,
           pooled=True, quantization=None,
           timing_note="LiteRT, 1 thread (the page runs the same file with LiteRT.js)"),
    Format("micro", "model_int8.cc", micro.micro_files, None, "tflite-micro",
           "Also write model_int8.cc/.h (the int8 file as a C array) and micro_ops.txt for "
           "TensorFlow Lite Micro, with the arena measured (implies int8).",
           flag="--micro", needs=("int8",), section="micro"),
)

BY_NAME = {fmt.name: fmt for fmt in FORMATS}
# --quantize's names, and the set --tflite writes.
CHOICES = tuple(fmt.name for fmt in FORMATS if fmt.choice)
TFLITE_FORMATS = tuple(fmt.name for fmt in FORMATS if fmt.tflite)
# What serving an export folder picks, best first, where no latency was measured: the
# int8 file is what ships to a phone.
SERVE_ORDER = tuple(sorted((f for f in FORMATS if f.serve_rank), key=lambda f: f.serve_rank))


def get(name):
    return BY_NAME[name]


def by_speed(latencies, names=None):
    """The formats of SERVE_ORDER (only ``names``, if given), best first: the LiteRT ones
    timed in ``latencies`` ({format: microseconds}, report.json's), fastest first; then
    the rest in serve_rank order (the fallback where nothing was timed).

    The one place that decides which file ``serve`` takes from an export folder, which
    graph the web page ships and whether ``export`` says int8 is the slower here.

        >>> [f.name for f in by_speed({"int8": 23.0, "float32": 19.0}, ("int8", "float32"))]
        ['float32', 'int8']
        >>> [f.name for f in by_speed({}, ("int8", "float32"))]
        ['int8', 'float32']
    """
    def timed(fmt):
        value = latencies.get(fmt.name)
        return (fmt.runtime == "litert" and isinstance(value, (int, float))
                and not isinstance(value, bool) and value == value)  # not NaN

    rows = [fmt for fmt in SERVE_ORDER if names is None or fmt.name in names]
    return tuple(sorted(rows, key=lambda f: (0, latencies[f.name], f.serve_rank) if timed(f)
                        else (1, 0.0, f.serve_rank)))


# ---------------------------------------------------------------------------------------
# Which formats an export writes
# ---------------------------------------------------------------------------------------


def parse_formats(text):
    """'int8,float16' -> ('float16', 'int8') in table order; BadInput for unknown names."""
    names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    unknown = [n for n in names if n not in CHOICES]
    if unknown or not names:
        raise BadInput(f"unknown quantization '{','.join(unknown) or text}'; choose from: "
                       f"{', '.join(CHOICES)} (comma-separated)")
    return tuple(name for name in CHOICES if name in names)


def require(fmt):
    """BadInput, in one line naming the pip extra, when ``fmt`` needs a module that is not
    installed. Looks modules up without importing them."""
    missing = [module for module in fmt.packages if not module_available(module)]
    if missing:
        raise BadInput(f"{fmt.name} needs {', '.join(missing)}, not installed: "
                       f'pip install "lenet-keras[{fmt.extra}]"')


def select(names=()):
    """The formats an export writes, in table order: the ``always`` ones, ``names``
    (choices or flag formats) and what they need. BadInput for an unknown name or a
    missing optional package, before any work is done."""
    unknown = [n for n in names if n not in BY_NAME or not (BY_NAME[n].choice or BY_NAME[n].flag)]
    if unknown:
        raise BadInput(f"unknown format '{','.join(unknown)}'; choose from: "
                       f"{', '.join(f.name for f in FORMATS if f.choice or f.flag)}")
    chosen = {fmt.name for fmt in FORMATS if fmt.always} | set(names)
    for fmt in reversed(FORMATS):  # needs point back up the table
        if fmt.name in chosen:
            chosen |= set(fmt.needs)
    rows = tuple(fmt for fmt in FORMATS if fmt.name in chosen)
    for fmt in rows:
        require(fmt)
    return rows


# ---------------------------------------------------------------------------------------
# Which format a file is
# ---------------------------------------------------------------------------------------


def named(path):
    """The format whose export file ``path`` is (model_int8.tflite -> int8,
    .../web/model.tflite -> web), else None."""
    parts = Path(path).parts
    return next((fmt for fmt in FORMATS
                 if parts[-len(Path(fmt.file).parts):] == Path(fmt.file).parts), None)


def for_path(path):
    """The format that runs ``path``: by its export file name, else by its kind (a
    SavedModel folder, a .keras, .tflite or .onnx file under any name); None when no
    format with a predictor matches."""
    path = Path(path)
    fmt = named(path)
    if fmt is None or fmt.predictor is None:
        suffix = "/" if path.is_dir() else path.suffix
        fmt = next((f for f in FORMATS if f.suffix == suffix and f.predictor), None)
    return fmt if fmt is not None and fmt.predictor is not None else None


def model_kinds():
    """'a .keras, .tflite or .onnx file or a SavedModel folder' (for error messages)."""
    suffixes = list(dict.fromkeys(f.suffix for f in FORMATS if f.predictor and f.suffix != "/"))
    files = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
    return f"a {files} file or a SavedModel directory"
