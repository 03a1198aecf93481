"""Export a trained run for serving and for devices, and prove the exports still work.

An export directory holds (one row each in ``formats.FORMATS``)::

    saved_model/            TensorFlow SavedModel (Keras 3 ``model.export``): a ``serve``
                            endpoint taking raw 0-255 float32 pixels [batch, H, W, C]
    model_float32.tflite    LiteRT, float32
    model_dynamic.tflite    dynamic-range: int8 weights, float activations
    model_float16.tflite    float16 weights (for GPU delegates; runs as float32 on CPU)
    model_int8.tflite       full integer: int8 weights, activations, input AND output
    model_mediapipe.tflite  for MediaPipe Tasks' ImageClassifier as it is: RGB uint8 input
                            of the model's size (the runtime resizes any photo), float32
                            probabilities (gray models convert RGB to luma inside)
    model.onnx              with --onnx (or --quantize ...,onnx): ONNX, dynamic batch, raw
                            pixels in, run by ONNX Runtime (pip install "lenet-keras[onnx]")
    model_int8.cc/.h        with --micro: model_int8.tflite as a C array, for
                            TensorFlow Lite Micro (see micro.py), micro_ops.txt
    labels.txt              one class name per line, index order
    report.json             per format: bytes, test accuracy, drop vs Keras, top-1
                            agreement with Keras, single-image latency, tensor dtypes and
                            quantization parameters

The export is a loop over the table: each format's converter writes its file, its
runtime runs it on the test split (``report_entry``: one function for every entry) and
the formats are timed together (``_time``). Every .tflite carries TFLite metadata
(labels, input normalization; see metadata.py), so a phone app needs the one file. How
the .tflite files are made, and why: ``convert.py``. Export folders: ``exports.py``.

    >>> report = export_run("runs/lenet5-fashion-mnist-20250101-120000", "exports/lenet5")
"""

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from lenet_keras.devices import select_backend
from lenet_keras.errors import BadInput
from lenet_keras.exports import (
    check_destination, default_export_dir, make_staging_dir, publish,
)
from lenet_keras.formats import TFLITE_FORMATS, by_speed, get, select
from lenet_keras.pipelines import evaluation_batches
from lenet_keras.quiet import import_keras, import_tensorflow
from lenet_keras.runs import check_not_training, load_config, load_model, read_labels

# A few hundred images pin down every activation range of a LeNet; more only costs time.
DEFAULT_CALIBRATION_SAMPLES = 300
# Release gate: largest accepted test-accuracy drop (percentage points) vs the Keras model.
DEFAULT_MAX_DROP_PP = 1.0
# Latency: the mean of NUMBER single-image calls in the fastest of ROUNDS rounds (as
# timeit advises: slower rounds measure other processes, not the model). The
# single-threaded formats take turns round by round, so a busy spell on a shared CPU
# hits all alike.
LATENCY_ROUNDS = 15
LATENCY_NUMBER = 200


# ---------------------------------------------------------------------------------------
# Data and measurements
# ---------------------------------------------------------------------------------------


def _test_and_calibration(config):
    """(dataset name, class names, test split, training split) of a run's dataset,
    unaugmented, loaded once per export: the test split verifies every format, the
    training split calibrates int8 (never the split the report measures)."""
    bundle = evaluation_batches(config)
    return bundle.name, list(bundle.class_names), bundle.test, bundle.train


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


@dataclass
class ExportJob:
    """One export in progress: what the converters (``Format.convert``) and the
    verification share."""

    model: object                 # the Keras model
    model_path: Path              # the run's model.keras
    run_name: str                 # the run folder's name (C identifiers of --micro)
    summary: str                  # "lenet5 trained on fashion_mnist"
    staging: Path                 # the export being built
    sources: Path                 # scratch folder inside it (converter sources)
    x_test: np.ndarray            # the test split: raw pixels and labels
    y_test: np.ndarray
    calibration: object           # training images for calibrated formats, or None
    describe: dict                # metadata.add_metadata's arguments
    progress: bool = True
    log: Callable = print
    safe_mode: bool = True
    graphs: dict = field(default_factory=dict)    # converter sources by fold plan
    written: dict = field(default_factory=dict)   # {format: path written}
    latencies: dict = field(default_factory=dict)  # {format: us} of those timed so far
    reference: object = None      # the first format's (Keras) probabilities

    def progress_bar(self, total, desc):
        return _progress(total, desc, self.progress)

    def fastest(self, names):
        """The one of the formats ``names`` to ship: the fastest as timed so far, else the
        first by rank (``formats.by_speed``: as serve and report["int8_vs_float32"])."""
        return by_speed(self.latencies, names)[0].name


def tflite_bytes(model, name, check_images, calibration=None, describe=None):
    """(bytes, report extras) of the .tflite ``export`` writes for the LiteRT format
    ``name`` (float32, dynamic, float16, int8) of ``model``: its own converter, so the
    same graph rewrites (checked on ``check_images``), calibration (on ``calibration``)
    and metadata (``describe``, default: class_0... labels), without an export folder.
    For benchmarks: their numbers are those of the files that ship."""
    fmt = get(name)
    describe = describe or {"labels": [f"class_{i}" for i in range(model.output_shape[-1])],
                            "name": model.name, "channels": int(model.input_shape[-1])}
    with tempfile.TemporaryDirectory(prefix="tflite-bytes-") as folder:
        job = ExportJob(model=model, model_path=Path(folder) / "model.keras",
                        run_name=model.name, summary=model.name, staging=Path(folder),
                        sources=Path(folder), x_test=np.asarray(check_images, np.float32),
                        y_test=np.zeros(len(check_images), np.int64),
                        calibration=None if calibration is None else np.asarray(calibration),
                        describe=describe, progress=False, log=lambda *_: None)
        path, extra = fmt.convert(job, fmt)
        return path.read_bytes(), extra


def report_entry(fmt, path, runner, job, extra=None):
    """The report entry of one format, the same for all: file and bytes, test accuracy,
    top-1 agreement with (and largest probability difference from) the reference, tensor
    dtypes and quantization parameters; ``latency_us`` is filled in by ``_time``. The
    first format measured is the reference (the table's first row: Keras)."""
    with job.progress_bar(len(job.x_test), f"evaluating {fmt.name}") as bar:
        probabilities = np.asarray(runner.predict(job.x_test, progress=bar.update))
    if job.reference is None:
        job.reference = probabilities
    path = Path(path)
    inside = path.parent == job.staging
    return {
        "file": (path.name + ("/" if path.is_dir() else "")) if inside else str(path),
        "bytes": _dir_bytes(path) if path.is_dir() else path.stat().st_size,
        "runtime": fmt.runtime,
        **_compare(probabilities, job.y_test, job.reference),
        "latency_us": None,
        "input": runner.input_info,
        "output": runner.output_info,
        **(extra or {}),
    }


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
        formats: optional formats to write besides the SavedModel and the MediaPipe file
            (names of ``formats.FORMATS`` rows: float32, dynamic, float16, int8, onnx,
            micro); () for those two only.
        calibration_samples: training images that calibrate the int8 model.
        latency_number: single-image calls per latency round.
        progress: show progress bars on stderr (when it is a terminal).
        log: callable for one-line progress messages.
        safe_mode: load model.keras in Keras safe mode (False only for trusted models).
        micro: also write model_int8.cc/.h and micro_ops.txt for TensorFlow Lite Micro
            and measure its arena (the same as "micro" in ``formats``; adds int8); see
            micro.py.

    Raises:
        BadInput: no model in the run, an unknown format or one whose packages are not
        installed, a corrupt model, an unwritable destination, a model that needs
        non-builtin ops.
    """
    run_dir, model_path = Path(run_dir), Path(run_dir) / "model.keras"
    _check_run(run_dir, calibration_samples)
    plan = select((*formats, *(("micro",) if micro else ())))
    out = Path(out_dir) if out_dir else default_export_dir(run_dir)
    check_destination(out)  # before the model loads: a user's folder costs one line
    labels = read_labels(run_dir) if (run_dir / "labels.txt").exists() else None
    model = load_model(model_path, safe_mode=safe_mode)  # a corrupt model fails before anything is written
    outputs = int(model.output_shape[-1])
    if labels is not None and len(labels) != outputs:
        raise BadInput(f"'{run_dir / 'labels.txt'}' lists {len(labels)} classes but the model "
                       f"has {outputs} outputs")
    missing_parents = [p for p in out.parents if not p.exists()]
    staging = make_staging_dir(out)  # fails early on an unwritable destination
    try:
        report = _export_into(staging, model, run_dir, plan, calibration_samples,
                              latency_number, progress, log, safe_mode)
        report["export_dir"] = str(out)
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        publish(staging, out)
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


def _check_run(run_dir, calibration_samples):
    """What export checks of a run before it loads anything."""
    check_not_training(run_dir)  # its model.keras is a half-trained epoch's
    if not (run_dir / "model.keras").is_file():
        raise BadInput(f"run '{run_dir}' has no model.keras yet; finish training it first")
    if calibration_samples < 1:
        raise BadInput(f"--calibration-samples must be at least 1, got {calibration_samples}")
    load_config(run_dir)  # a hand-edited config.json fails here, before anything is written
    # SavedModel and LiteRT need Keras on TensorFlow, whatever KERAS_BACKEND says.
    select_backend("tensorflow")


def _export_into(staging, model, run_dir, plan, calibration_samples, latency_number,
                 progress, log, safe_mode):
    """Write every file of the export into ``staging``; returns the report."""
    config = load_config(run_dir)
    dataset, class_names, test, train = _test_and_calibration(config)
    x_test, y_test = dataset_arrays(test)
    if len(x_test) == 0:
        raise BadInput(f"the run's dataset '{dataset}' has no test images to verify against")
    expected = tuple(int(d) for d in model.input_shape[1:])
    if tuple(x_test.shape[1:]) != expected:
        shown = lambda shape: "x".join(map(str, shape))  # noqa: E731
        raise BadInput(f"'{run_dir / 'config.json'}' gives {shown(x_test.shape[1:])} images "
                       f"(image_size, color) but model.keras takes {shown(expected)}; "
                       "was config.json edited?")
    log(f"exporting {config.model} from {run_dir}: verifying on {len(x_test)} test images "
        f"of {dataset}")
    calibration = None
    if any(fmt.calibrated for fmt in plan):
        calibration, _ = dataset_arrays(train, calibration_samples)
    labels = _write_labels(staging, run_dir, class_names)
    job = ExportJob(
        model=model, model_path=run_dir / "model.keras", run_name=run_dir.resolve().name,
        summary=f"{config.model} trained on {dataset}", staging=staging,
        sources=Path(tempfile.mkdtemp(prefix="tflite-src-", dir=staging)),
        x_test=x_test, y_test=y_test, calibration=calibration,
        describe=_describe(model, config.model, dataset, labels), progress=progress, log=log,
        safe_mode=safe_mode)
    try:
        entries = _write_and_verify(job, [f for f in plan if f.section == "formats"],
                                    latency_number)
    finally:
        shutil.rmtree(job.sources, ignore_errors=True)
    # Sections (micro) build on files already written and verified.
    sections = {fmt.section: fmt.convert(job, fmt) for fmt in plan if fmt.section != "formats"}
    return {
        "run_dir": str(run_dir),
        "model": config.model,
        "dataset": dataset,
        "class_names": class_names,
        "num_test": int(len(x_test)),
        "calibration_samples": int(len(calibration)) if calibration is not None else 0,
        "latency": _latency_text(plan, latency_number),
        "created": datetime.now(timezone.utc).isoformat(),
        "versions": _versions(plan),
        "formats": entries,
        "int8_vs_float32": int8_vs_float32(entries, log),
        **sections,
    }


def _write_labels(staging, run_dir, class_names):
    """labels.txt of the export (the run's own when it has one); returns the labels."""
    labels_src = run_dir / "labels.txt"
    if labels_src.is_file():
        shutil.copyfile(labels_src, staging / "labels.txt")
    else:
        (staging / "labels.txt").write_text("\n".join(class_names) + "\n")
    return (staging / "labels.txt").read_text().splitlines()


def _describe(model, name, dataset, labels):
    """What every .tflite carries as TFLite metadata (add_metadata's arguments)."""
    return {
        "labels": labels,
        "name": name,
        "description": (f"{name} trained on {dataset} by lenet_keras: "
                        f"{'x'.join(map(str, model.input_shape[1:]))} raw 0-255 pixels in, "
                        f"probabilities of {model.output_shape[-1]} classes out."),
        "channels": int(model.input_shape[-1]),
    }


def _write_and_verify(job, plan, latency_number):
    """Convert, verify and time each format of ``plan`` (table order: the reference
    first; ``after_timing`` formats once the others are timed); returns {format: report
    entry}."""
    entries, runners = {}, []
    try:
        for stage in ([f for f in plan if not f.after_timing], [f for f in plan if f.after_timing]):
            timers = {}
            for fmt in stage:
                path, extra = fmt.convert(job, fmt)
                job.written[fmt.name] = path
                runners.append(fmt.checker.open(path, job.safe_mode))
                entries[fmt.name] = report_entry(fmt, path, runners[-1], job, extra)
                timers[fmt.name] = runners[-1].timer(job.x_test[:64])
            _time(timers, entries, latency_number, job.log)
            job.latencies = {name: entry["latency_us"] for name, entry in entries.items()}
    finally:
        for runner in runners:
            runner.close()
    keras_accuracy = entries[plan[0].name]["test_accuracy"]
    for entry in entries.values():
        entry["accuracy_drop_pp"] = round((keras_accuracy - entry["test_accuracy"]) * 100, 4)
    float_bytes = entries.get("float32", {}).get("bytes")
    for entry in entries.values():
        if float_bytes and entry["file"].endswith(".tflite"):
            entry["size_vs_float32"] = round(entry["bytes"] / float_bytes, 4)
    return entries


def int8_vs_float32(entries, log=print):
    """report["int8_vs_float32"] where both were timed (else None): their latencies, the
    ratio and which is faster (``by_speed``, as serve and the web page choose); says so
    in one line where int8 is the slower."""
    latencies = {name: entries[name]["latency_us"] for name in ("int8", "float32")
                 if name in entries}
    if len(latencies) < 2 or None in latencies.values():
        return None
    faster = by_speed(latencies, tuple(latencies))[0].name
    if faster == "float32":
        served = by_speed({name: entry["latency_us"] for name, entry in entries.items()})
        serves = next(fmt.file for fmt in served if fmt.name in entries)
        page = ", the web page the float32 graph" if "web" in entries else ""
        log(f"int8 is slower than float32 here ({latencies['int8']:.1f} vs "
            f"{latencies['float32']:.1f} us): serve uses {serves}{page}")
    return {"int8_us": latencies["int8"], "float32_us": latencies["float32"],
            "ratio": round(latencies["int8"] / latencies["float32"], 4), "faster": faster}


def _time(timers, entries, latency_number, log):
    """Fill in every entry's latency_us, each format timed as its row says."""
    timing = {name: get(name).timing for name in timers}
    for name in [n for n in timers if timing[n] == "reference"]:
        entries[name]["latency_us"] = measure_latency_us(
            timers[name], number=max(1, latency_number // 10))
    rest = [n for n in timers if timing[n] != "reference"]
    if rest:
        log(f"timing {', '.join(rest)}")
    shared = {n: timers[n] for n in rest if timing[n] == "shared"}
    for name, latency in measure_latencies_us(shared, number=latency_number).items():
        entries[name]["latency_us"] = latency
    # Timed on their own: a runtime with threads of its own (MediaPipe) should not share
    # the rounds of the single-threaded ones.
    for name in [n for n in rest if timing[n] == "alone"]:
        entries[name]["latency_us"] = measure_latency_us(timers[name], number=latency_number)


def _latency_text(plan, latency_number):
    """How report["latency"] was measured, from the formats' rows."""
    rows = [fmt for fmt in plan if fmt.section == "formats"]
    reference = "/".join(f.name for f in rows if f.timing == "reference")
    shared = "/".join(f.name for f in rows if f.timing == "shared" and not f.after_timing)
    notes = {}
    for fmt in rows:
        notes.setdefault((fmt.timing, fmt.timing_note), []).append(fmt.name)
    parts = [f"{'/'.join(names)}{' (timed alone)' if timing == 'alone' else ''}: {note}"
             for (timing, note), names in notes.items()]
    text = (f"mean of {latency_number} single-image calls ({reference}: "
            f"{max(1, latency_number // 10)}) in the fastest of {LATENCY_ROUNDS} rounds; "
            + "; ".join(parts))
    if shared:
        text += f"; {shared} taking turns each round, input already in the file's dtype"
    later = "/".join(f.name for f in rows if f.after_timing)
    if later:
        text += f"; {later} after the others (built from their latencies)"
    return text


def _versions(plan):
    from importlib.metadata import PackageNotFoundError, version

    tf, keras = import_tensorflow(), import_keras()
    versions = {"tensorflow": tf.__version__, "keras": keras.__version__,
                "ai_edge_litert": version("ai-edge-litert")}
    for package in [p for fmt in plan for p in fmt.packages]:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


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
