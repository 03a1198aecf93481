"""Export a trained run for serving and for devices, and prove the exports still work.

An export directory holds::

    saved_model/            TensorFlow SavedModel (Keras 3 ``model.export``): a ``serve``
                            endpoint taking raw 0-255 float32 pixels [batch, H, W, C]
    model_float32.tflite    LiteRT, float32
    model_dynamic.tflite    dynamic-range: int8 weights, float activations
    model_float16.tflite    float16 weights (for GPU delegates; runs as float32 on CPU)
    model_int8.tflite       full integer: int8 weights, activations, input AND output
    model_mediapipe.tflite  for MediaPipe Tasks' ImageClassifier as it is: RGB uint8 input
                            of the model's size (the runtime resizes any photo), float32
                            probabilities (gray models convert RGB to luma inside)
    model_int8.cc/.h        with --micro: model_int8.tflite as a C array, for
                            TensorFlow Lite Micro (see micro.py), micro_ops.txt
    labels.txt              one class name per line, index order
    report.json             per format: bytes, test accuracy, drop vs Keras, top-1
                            agreement with Keras, single-image latency, tensor dtypes and
                            quantization parameters

Every .tflite carries TFLite metadata (labels, input normalization; see metadata.py), so
a phone app needs the one file. How the .tflite files are made, and why: ``convert.py``.

    >>> report = export_run("runs/lenet5-fashion-mnist-20250101-120000", "exports/lenet5")
"""

import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput
from lenet_keras.convert import (
    TFLITE_FORMATS, convert_tflite, export_saved_model, fold_plan, rgb_uint8_graph,
    tflite_filename, tflite_graph,
)
from lenet_keras.metadata import add_metadata
from lenet_keras.quiet import import_keras, import_tensorflow, native_output_captured
from lenet_keras.runs import load_model, read_labels

EXPORTS_ROOT = Path("exports")
# MediaPipe Tasks' ImageClassifier model (see _export_mediapipe).
MEDIAPIPE_FILENAME = "model_mediapipe.tflite"
# A few hundred images pin down every activation range of a LeNet; more only costs time.
DEFAULT_CALIBRATION_SAMPLES = 300
# Release gate: largest accepted test-accuracy drop (percentage points) vs the Keras model.
DEFAULT_MAX_DROP_PP = 1.0
# Latency: the mean of NUMBER single-image calls in the fastest of ROUNDS rounds (as
# timeit advises: slower rounds measure other processes, not the model). The TFLite
# formats take turns round by round, so a busy spell on a shared CPU hits all alike.
LATENCY_ROUNDS = 15
LATENCY_NUMBER = 200


def default_export_dir(run_dir, root=EXPORTS_ROOT):
    """exports/<run-name>/"""
    return Path(root) / Path(run_dir).resolve().name


# ---------------------------------------------------------------------------------------
# Destination: build beside it, rename into place
# ---------------------------------------------------------------------------------------


# Written first into every export (and into its staging folder): the package replaces
# or deletes only folders that hold it, and only when every entry in them is one it
# wrote. A user's folder, even one holding a report.json or a saved_model/, is never
# taken for an export.
MARKER = ".lenet-keras-export.json"


def _read_marker(folder):
    try:
        marker = json.loads((folder / MARKER).read_text())
        return marker if isinstance(marker, dict) and marker.get("package") == "lenet_keras" else None
    except (OSError, ValueError):
        return None


def _foreign_entries(folder):
    """Entries of ``folder`` the package did not write there (all of them when it holds
    no marker)."""
    marker = _read_marker(folder)
    written = set(marker.get("files", [])) | {MARKER} if marker else {MARKER}
    entries = sorted(entry.name for entry in folder.iterdir())
    return entries if marker is None else [name for name in entries if name not in written]


def check_destination(out):
    """BadInput unless ``out`` may become an export: new, empty, or a previous export of
    this package holding nothing else. Checked before the model is loaded."""
    from lenet_keras.runs import check_output_dir

    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BadInput(f"--out '{out}' exists and is not an export directory; choose another --out")
    check_output_dir(out, option="--out", longest="saved_model/variables/variables.data-00000-of-00001")
    if out.exists() and any(out.iterdir()):
        marker, foreign = _read_marker(out), _foreign_entries(out)
        if marker is None:
            raise BadInput(f"--out '{out}' exists and is not an export directory (it holds "
                           f"{', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, and no "
                           f"{MARKER}); choose another --out")
        if foreign:
            raise BadInput(f"--out '{out}' is an export with files added to it "
                           f"({', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}); "
                           "move them or choose another --out")


def _remove_stale_staging(out):
    """Delete the ``.NAME.tmp-*`` / ``.NAME.old-*`` folders an interrupted export of ``out``
    left beside it: only real folders (not links) holding the marker, whose process has
    ended."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp-[A-Za-z0-9_]{{8}}|old-\d+)$")
    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return
    for folder in siblings:
        if not pattern.match(folder.name) or folder.is_symlink() or not folder.is_dir():
            continue
        marker = _read_marker(folder)
        # .tmp-: the staging folder of the process in its marker; .old-PID: a previous
        # export that process PID was replacing.
        owner = int(folder.name.rsplit("-", 1)[1]) if ".old-" in folder.name else marker and marker.get("pid")
        if marker is None or _process_alive(owner):
            continue
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_marker(folder, files=()):
    from lenet_keras import __version__

    (folder / MARKER).write_text(json.dumps({
        "package": "lenet_keras", "version": __version__, "pid": os.getpid(),
        "files": sorted(files)}, indent=2) + "\n")


def _make_staging_dir(out):
    check_destination(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        _write_marker(staging)  # first: an interrupted export is recognisable as ours
    except OSError as error:
        raise BadInput(f"cannot write to '{out}': {error.strerror or error}") from None
    # mkdtemp makes the folder private (0700); an export is an ordinary folder.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _publish(staging, out):
    """Move the finished staging directory to ``out``, replacing a previous export."""
    _write_marker(staging, [entry.name for entry in staging.iterdir()])
    check_destination(out)  # again: the user may have added files while we worked
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Data and measurements
# ---------------------------------------------------------------------------------------


def dataset_arrays(dataset, limit=None):
    """A batched (images, labels) tf.data pipeline -> numpy arrays, at most ``limit``."""
    xs, ys, count = [], [], 0
    for images, labels in dataset:
        xs.append(images.numpy())
        ys.append(labels.numpy())
        count += len(xs[-1])
        if limit is not None and count >= limit:
            break
    if not xs:
        return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:limit], y[:limit]) if limit is not None else (x, y)


def measure_latencies_us(calls, rounds=LATENCY_ROUNDS, number=LATENCY_NUMBER):
    """{name: mean microseconds per call()} in each call's fastest of ``rounds`` rounds;
    the calls take turns within every round."""
    for call in calls.values():
        for _ in range(max(1, number // 5)):  # warm-up: first calls allocate and trace
            call()
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            for _ in range(number):
                call()
            best[name] = min(best[name], (time.perf_counter() - started) / number)
    return {name: seconds * 1e6 for name, seconds in best.items()}


def measure_latency_us(call, rounds=LATENCY_ROUNDS, number=LATENCY_NUMBER):
    """Mean microseconds per ``call()`` in the fastest of ``rounds`` rounds."""
    return measure_latencies_us({"call": call}, rounds, number)["call"]


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm

    # disable=None turns the bar off when stderr is not a terminal (logs, CI).
    return tqdm(total=total, desc=desc, unit="img", leave=False, file=sys.stderr,
                disable=None if enabled else True, dynamic_ncols=True)


def _compare(probabilities, labels, keras_probabilities):
    predicted = probabilities.argmax(axis=1)
    return {
        "test_accuracy": float(np.mean(predicted == labels)),
        "agreement": float(np.mean(predicted == keras_probabilities.argmax(axis=1))),
        "max_abs_diff": float(np.max(np.abs(probabilities - keras_probabilities))),
    }


def _dir_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _float_tensor(shape):
    return {"dtype": "float32", "shape": list(shape), "scale": 0.0, "zero_point": 0}


# ---------------------------------------------------------------------------------------
# The export
# ---------------------------------------------------------------------------------------


def export_run(run_dir, out_dir=None, formats=TFLITE_FORMATS,
               calibration_samples=DEFAULT_CALIBRATION_SAMPLES, latency_number=LATENCY_NUMBER,
               progress=True, log=print, safe_mode=True, micro=False):
    """Export a run's best model and write report.json; returns the report.

    Args:
        run_dir: a run directory made by ``fit`` (with model.keras).
        out_dir: destination (default ``exports/<run-name>/``); replaced atomically.
        formats: TFLite formats to write (subset of TFLITE_FORMATS); () for SavedModel only.
        calibration_samples: training images that calibrate the int8 model.
        latency_number: single-image calls per latency round.
        progress: show progress bars on stderr (when it is a terminal).
        log: callable for one-line progress messages.
        safe_mode: load model.keras in Keras safe mode (False only for trusted models).
        micro: also write model_int8.cc/.h and micro_ops.txt for TensorFlow Lite Micro
            and measure its arena (adds "int8" to ``formats``); see micro.py.

    Raises:
        BadInput: no model in the run, a corrupt model, an unwritable destination, a
        model that needs non-builtin ops.
    """
    run_dir = Path(run_dir)
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise BadInput(f"run '{run_dir}' has no model.keras yet; finish training it first")
    if calibration_samples < 1:
        raise BadInput(f"--calibration-samples must be at least 1, got {calibration_samples}")
    formats = tuple(f for f in TFLITE_FORMATS if f in formats or (micro and f == "int8"))
    out = Path(out_dir) if out_dir else default_export_dir(run_dir)
    check_destination(out)  # before the model loads: a user's folder costs one line
    labels = read_labels(run_dir) if (run_dir / "labels.txt").exists() else None
    model = load_model(model_path, safe_mode=safe_mode)  # a corrupt model fails before anything is written
    outputs = int(model.output_shape[-1])
    if labels is not None and len(labels) != outputs:
        raise BadInput(f"'{run_dir / 'labels.txt'}' lists {len(labels)} classes but the model "
                       f"has {outputs} outputs")
    missing_parents = [p for p in out.parents if not p.exists()]
    staging = _make_staging_dir(out)  # fails early on an unwritable destination
    try:
        report = _export_into(staging, model, run_dir, formats, calibration_samples,
                              latency_number, progress, log)
        if micro:
            report["micro"] = _export_micro(staging, run_dir, report, log)
        report["export_dir"] = str(out)
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        _publish(staging, out)
    finally:
        # Whatever went wrong (error, Ctrl-C), the destination never holds half an export.
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
            for parent in missing_parents:  # nearest first; only folders this call made
                try:
                    parent.rmdir()
                except OSError:
                    break
    return report


def _export_into(staging, model, run_dir, formats, calibration_samples, latency_number,
                 progress, log):
    """Write every file of the export into ``staging``; returns the report."""
    keras = import_keras()
    tf = import_tensorflow()

    from lenet_keras.runs import load_config
    from lenet_keras.pipelines import evaluation_batches

    model_path = run_dir / "model.keras"
    config = load_config(run_dir)
    bundle = evaluation_batches(config)
    x_test, y_test = dataset_arrays(bundle.test)
    if len(x_test) == 0:
        raise BadInput(f"the run's dataset '{bundle.name}' has no test images to verify against")
    log(f"exporting {config.model} from {run_dir}: verifying on {len(x_test)} test images "
        f"of {bundle.name}")

    # Keras reference: the predictions every export is compared with.
    keras_probabilities = np.asarray(model.predict(x_test, batch_size=256, verbose=0))
    one = x_test[:1]
    report_formats = {
        "keras": {
            "file": str(model_path), "bytes": model_path.stat().st_size, "runtime": "keras",
            **_compare(keras_probabilities, y_test, keras_probabilities),
            "latency_us": measure_latency_us(lambda: model(one, training=False),
                                             number=max(1, latency_number // 10)),
            "input": _float_tensor([None, *model.input_shape[1:]]),
            "output": _float_tensor([None, *model.output_shape[1:]]),
        }
    }
    keras_accuracy = report_formats["keras"]["test_accuracy"]

    # SavedModel for TF Serving: dynamic batch, raw pixels in, probabilities out.
    saved_model_dir = staging / "saved_model"
    export_saved_model(model, saved_model_dir)
    loaded = tf.saved_model.load(str(saved_model_dir))
    saved_probabilities = np.concatenate([
        loaded.serve(x_test[i: i + 256]).numpy() for i in range(0, len(x_test), 256)
    ])
    report_formats["saved_model"] = {
        "file": "saved_model/", "bytes": _dir_bytes(saved_model_dir), "runtime": "tensorflow",
        **_compare(saved_probabilities, y_test, keras_probabilities),
        "latency_us": measure_latency_us(lambda: loaded.serve(one),
                                         number=max(1, latency_number // 10)),
        "input": _float_tensor([None, *model.input_shape[1:]]),
        "output": _float_tensor([None, *model.output_shape[1:]]),
    }
    labels_src = run_dir / "labels.txt"
    if labels_src.is_file():
        shutil.copyfile(labels_src, staging / "labels.txt")
    else:
        (staging / "labels.txt").write_text("\n".join(bundle.class_names) + "\n")

    # Every .tflite carries its labels and input normalization as TFLite metadata.
    describe = {
        "labels": (staging / "labels.txt").read_text().splitlines(),
        "name": config.model,
        "description": (f"{config.model} trained on {bundle.name} by lenet_keras: "
                        f"{'x'.join(map(str, model.input_shape[1:]))} raw 0-255 pixels in, "
                        f"probabilities of {model.output_shape[-1]} classes out."),
        "channels": int(model.input_shape[-1]),
    }
    # The converter's sources: the same model with a static batch of one image and
    # few-channel convolutions folded (both for XNNPACK; see convert.py).
    sources = Path(tempfile.mkdtemp(prefix="tflite-src-", dir=staging))
    timers, classifier = {}, None
    try:
        calibration = None
        if "int8" in formats:
            calibration, _ = dataset_arrays(bundle.train, calibration_samples)
        graphs = {}
        for kind in formats:
            plan = fold_plan(model, kind)
            key = tuple(sorted(plan.items()))
            if key not in graphs:
                graph, used = tflite_graph(model, x_test[:256], plan)
                graphs[key] = (sources / f"graph{len(graphs)}", used)
                export_saved_model(graph, graphs[key][0], batch_size=1)
            source, used = graphs[key]
            report_formats[kind], timers[kind] = _export_tflite(
                kind, source, staging, calibration, x_test, y_test,
                keras_probabilities, progress, describe)
            # {convolution: columns folded into channels}, see convert.fold_columns
            report_formats[kind]["folded_columns"] = used
        # What MediaPipe Tasks' ImageClassifier loads as it is (RGB uint8 in, metadata).
        report_formats["mediapipe"], classifier, classify = _export_mediapipe(
            model, sources, staging, x_test, y_test, keras_probabilities, progress, describe)
        log(f"timing {', '.join([*timers, 'mediapipe'])} (LiteRT, 1 thread; MediaPipe "
            "ImageClassifier)")
        for kind, latency in measure_latencies_us(timers, number=latency_number).items():
            report_formats[kind]["latency_us"] = latency
        # Timed on its own: MediaPipe runs its graph on threads of its own, which should
        # not share the rounds of the single-threaded LiteRT formats.
        report_formats["mediapipe"]["latency_us"] = measure_latency_us(classify,
                                                                       number=latency_number)
    finally:
        if classifier is not None:
            classifier.close()
        shutil.rmtree(sources, ignore_errors=True)

    for entry in report_formats.values():
        entry["accuracy_drop_pp"] = round((keras_accuracy - entry["test_accuracy"]) * 100, 4)
    float_bytes = report_formats.get("float32", {}).get("bytes")
    for entry in report_formats.values():
        if float_bytes and entry["file"].endswith(".tflite"):
            entry["size_vs_float32"] = round(entry["bytes"] / float_bytes, 4)

    from importlib.metadata import version

    return {
        "run_dir": str(run_dir),
        "model": config.model,
        "dataset": bundle.name,
        "class_names": list(bundle.class_names),
        "num_test": int(len(x_test)),
        "calibration_samples": int(len(calibration)) if formats and "int8" in formats else 0,
        "latency": (f"mean of {latency_number} single-image calls (keras/saved_model: "
                    f"{max(1, latency_number // 10)}) in the fastest of {LATENCY_ROUNDS} rounds; "
                    "TFLite with LiteRT, 1 thread, formats taking turns each round, input "
                    "already in the file's dtype; mediapipe (timed alone): ImageClassifier."
                    "classify on a uint8 RGB image, its own preprocessing and threads"),
        "created": datetime.now(timezone.utc).isoformat(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "ai_edge_litert": version("ai-edge-litert")},
        "formats": report_formats,
    }


def _export_tflite(kind, source, staging, calibration, x_test, y_test, keras_probabilities,
                   progress, describe):
    """Convert, write (with metadata: ``describe`` holds add_metadata's arguments) and
    evaluate one TFLite format.

    Returns its report entry and a single-image call to time (one test image after
    another, already in the file's input dtype).
    """
    from lenet_keras.predictors import TFLiteModel

    representative = None
    if kind == "int8":
        def representative():
            with _progress(len(calibration), "calibrating int8", progress) as bar:
                for image in calibration:
                    bar.update(1)
                    yield [image[None].astype(np.float32)]

    content = add_metadata(convert_tflite(source, kind, representative), **describe)
    path = staging / tflite_filename(kind)
    path.write_bytes(content)
    runner = TFLiteModel(content)
    with _progress(len(x_test), f"evaluating {kind}", progress) as bar:
        probabilities = runner.predict(x_test, progress=bar.update)
    prepared = runner.prepare(x_test[:64])
    images = itertools.cycle([prepared[i: i + 1] for i in range(len(prepared))])
    entry = {
        "file": path.name, "bytes": len(content), "runtime": "litert",
        **_compare(probabilities, y_test, keras_probabilities),
        "latency_us": None,
        "input": runner.input_info,
        "output": runner.output_info,
    }
    return entry, lambda: runner.invoke(next(images))


def _export_mediapipe(model, sources, staging, x_test, y_test, keras_probabilities, progress,
                     describe):
    """Write model_mediapipe.tflite (float32 inside, RGB uint8 input, float32 output,
    metadata) and evaluate it with MediaPipe's ImageClassifier on the test split.

    Returns its report entry, the classifier (to close) and a single-image call to time.
    """
    from lenet_keras.metadata import MediaPipeClassifier

    graph, _ = tflite_graph(model, x_test[:256], fold_plan(model, "float32"))
    source = sources / "mediapipe"
    export_saved_model(rgb_uint8_graph(graph), source, batch_size=1, dtype="uint8")
    content = add_metadata(convert_tflite(source, "float32"), **{**describe, "channels": 3})
    path = staging / MEDIAPIPE_FILENAME
    path.write_bytes(content)
    with native_output_captured("loading the model in MediaPipe"):
        classifier = MediaPipeClassifier(path)
    with _progress(len(x_test), "evaluating mediapipe", progress) as bar:
        probabilities = classifier.predict(x_test, progress=bar.update)
    images = itertools.cycle([classifier.image(pixels) for pixels in x_test[:64]])
    height, width = model.input_shape[1:3]
    entry = {
        "file": path.name, "bytes": len(content), "runtime": "mediapipe",
        **_compare(probabilities, y_test, keras_probabilities),
        "latency_us": None,
        "input": {"dtype": "uint8", "shape": [1, height, width, 3], "scale": 0.0,
                  "zero_point": 0},
        "output": _float_tensor([1, model.output_shape[-1]]),
    }
    return entry, classifier, lambda: classifier.classify(next(images))


def _export_micro(staging, run_dir, report, log):
    """model_int8 as a C array for TensorFlow Lite Micro, with its arena measured."""
    from lenet_keras.micro import DEFAULT_AGREEMENT_SAMPLES, export_micro
    from lenet_keras.predictors import TFLiteModel
    from lenet_keras.runs import load_config
    from lenet_keras.pipelines import evaluation_batches

    content = (staging / tflite_filename("int8")).read_bytes()
    bundle = evaluation_batches(load_config(run_dir))
    images, _ = dataset_arrays(bundle.test, DEFAULT_AGREEMENT_SAMPLES)
    log(f"TensorFlow Lite Micro: measuring the arena, comparing {len(images)} test images "
        "with LiteRT's reference kernels")
    with native_output_captured("running the model under TensorFlow Lite Micro"):
        return export_micro(content, staging, run_dir.resolve().name,
                            TFLiteModel(content).prepare(images),
                            f"{report['model']} trained on {report['dataset']}")


# ---------------------------------------------------------------------------------------
# Reading the report
# ---------------------------------------------------------------------------------------


def drops_over(report, max_drop_pp):
    """{format: drop} for every TFLite/SavedModel format whose test accuracy is more than
    ``max_drop_pp`` percentage points below the Keras model's."""
    return {name: entry["accuracy_drop_pp"] for name, entry in report["formats"].items()
            if name != "keras" and entry["accuracy_drop_pp"] > max_drop_pp}


def _tensor_text(info):
    if info["dtype"].startswith("float") or not info["scale"]:
        return info["dtype"]
    return f"{info['dtype']} s={info['scale']:.4g} z={info['zero_point']}"


def micro_text(entry):
    """The report's ``micro`` entry in two lines."""
    agreement = entry["tflm_vs_litert_reference"]
    differing = {op: steps for op, steps in agreement["max_step_difference_by_op"].items()
                 if steps}
    where = ", ".join(f"{op} {steps}" for op, steps in differing.items()) or "none"
    return (f"TFLite Micro: flash {entry['flash_bytes']:,} B, arena {entry['arena_bytes']:,} B "
            f"measured ({entry['arena_bytes_proposed']:,} B proposed), "
            f"{len(entry['ops'])} ops: {', '.join(entry['ops'])}\n"
            f"TFLite Micro vs LiteRT reference kernels on {agreement['images']} test images: "
            f"top-1 {agreement['top1_agreement'] * 100:.2f}%, bit-exact "
            f"{agreement['bit_exact'] * 100:.1f}%, max {agreement['max_step_difference']} "
            f"quantization steps apart (ops that differ: {where})")


def format_table(report):
    """The report as a fixed-width table, one row per format (and the micro lines)."""
    header = (f"{'format':<12}{'bytes':>10}{'size':>7}{'accuracy':>10}{'drop pp':>9}"
              f"{'agree':>8}{'latency':>11}  {'input':<20}output")
    rows = [header, "-" * len(header)]
    for name, e in report["formats"].items():
        size = f"{e['size_vs_float32']:.2f}x" if "size_vs_float32" in e else ""
        rows.append(
            f"{name:<12}{e['bytes']:>10,}{size:>7}{e['test_accuracy']:>10.4f}"
            f"{e['accuracy_drop_pp']:>+9.2f}{e['agreement'] * 100:>7.2f}%"
            f"{e['latency_us']:>8.1f} us  {_tensor_text(e['input']):<20}{_tensor_text(e['output'])}"
        )
    if "micro" in report:
        rows.append(micro_text(report["micro"]))
    return "\n".join(rows)
