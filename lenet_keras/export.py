"""Export a trained run for serving and for devices, and prove the exports still work.

An export directory holds::

    saved_model/            TensorFlow SavedModel (Keras 3 ``model.export``): a ``serve``
                            endpoint taking raw 0-255 float32 pixels [batch, H, W, C]
    model_float32.tflite    LiteRT, float32
    model_dynamic.tflite    dynamic-range: int8 weights, float activations
    model_float16.tflite    float16 weights (for GPU delegates; runs as float32 on CPU)
    model_int8.tflite       full integer: int8 weights, activations, input AND output
    labels.txt              one class name per line, index order
    report.json             per format: bytes, test accuracy, drop vs Keras, top-1
                            agreement with Keras, single-image latency, tensor dtypes and
                            quantization parameters

How the .tflite files are made, and why:

- Keras 3 models do not go through ``TFLiteConverter.from_keras_model``; the converter
  reads a SavedModel that ``model.export`` writes.
- The .tflite files take ONE image, [1, H, W, C] (the on-device case). With a dynamic
  batch the converter keeps Flatten's run-time shape arithmetic (SHAPE, STRIDED_SLICE,
  PACK feeding RESHAPE); those int32 ops are not XNNPACK ops, so the graph is cut in two
  delegate partitions with the shape ops between them. With a static batch of 1 the
  whole network is one XNNPACK partition (int8: all but the int8 SOFTMAX, which stays
  on the builtin kernel).
- The first convolution is rewritten space-to-depth (``space_to_depth_stem``): XNNPACK
  runs a 1-channel int8 convolution much slower than float32 (LeNet-5's C1: 13 vs 8 us
  on an AMD EPYC, 124 vs 18 us on an Intel Xeon with AMX; most of the int8 model's
  time). Reading 7 columns as 7 channels makes int8 LeNet-5 2x (AMD) to 3.8x (Intel)
  faster; float formats read pairs of columns (1.2-1.3x faster). Same arithmetic.
- Rescaling (x/255) and the 28->32 zero padding are folded into that first convolution
  (its weights scaled, VALID padding on 32 becomes SAME on 28), so they cost nothing and
  the int8 input is raw pixels: scale 1, zero point -128.
- Only TFLite builtin ops are allowed (no Flex / SELECT_TF_OPS, no custom ops); a model
  that needs more fails with the list of offending ops.
- int8 is calibrated on images from the run's TRAINING split (never the test split the
  report measures), with per-channel weight scales for convolutions and per-tensor ones
  for dense layers (smaller file, same accuracy; see ``convert_tflite``).

    >>> report = export_run("runs/lenet5-fashion-mnist-20250101-120000", "exports/lenet5")
"""

import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput

EXPORTS_ROOT = Path("exports")
TFLITE_FORMATS = ("float32", "dynamic", "float16", "int8")
# A few hundred images pin down every activation range of a LeNet; more only costs time.
DEFAULT_CALIBRATION_SAMPLES = 300
# Release gate: largest accepted test-accuracy drop (percentage points) vs the Keras model.
DEFAULT_MAX_DROP_PP = 1.0
# Latency: the mean of NUMBER single-image calls in the fastest of ROUNDS rounds (as
# timeit advises: slower rounds measure other processes, not the model). The TFLite
# formats take turns round by round, so a busy spell on a shared CPU hits all alike.
LATENCY_ROUNDS = 15
LATENCY_NUMBER = 200
# Space-to-depth of the first convolution (see space_to_depth_stem). lenet5 on
# Fashion-MNIST, LiteRT 2.3, 1 thread, us per image for no rewrite / factor 2 / factor 7:
#   AMD EPYC (AVX-512 VNNI):  float32 18.3 / 14.9 / 26.4    int8  17.8 / 9.3 / 8.6
#   Intel Xeon (AMX):         float32 30.8 / 24.8 / 34.2    int8 147.5 / 67.3 / 38.4
# Float formats fold column pairs of a 1-channel input; int8 folds as many columns as fit
# in S2D_INT8_MAX_CHANNELS channels.
S2D_FLOAT_FACTOR = 2
S2D_INT8_MAX_CHANNELS = 8


def tflite_filename(kind):
    return f"model_{kind}.tflite"


def parse_formats(text):
    """'int8,float16' -> ('float16', 'int8') in canonical order; BadInput for unknown names."""
    names = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    unknown = [n for n in names if n not in TFLITE_FORMATS]
    if unknown or not names:
        raise BadInput(f"unknown quantization '{','.join(unknown) or text}'; choose from: "
                       f"{', '.join(TFLITE_FORMATS)} (comma-separated)")
    return tuple(f for f in TFLITE_FORMATS if f in names)


def default_export_dir(run_dir, root=EXPORTS_ROOT):
    """exports/<run-name>/"""
    return Path(root) / Path(run_dir).resolve().name


# ---------------------------------------------------------------------------------------
# Destination: build beside it, rename into place
# ---------------------------------------------------------------------------------------


def _is_replaceable(out):
    """An existing destination may be replaced only if it is empty or a previous export
    (never an arbitrary user folder)."""
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    return not any(out.iterdir()) or (out / "report.json").is_file() or (out / "saved_model").is_dir()


def _make_staging_dir(out):
    if out.exists() and not _is_replaceable(out):
        raise BadInput(f"'{out}' exists and is not an export directory; choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as error:
        raise BadInput(f"cannot write to '{out}': {error.strerror or error}") from None
    # mkdtemp makes the folder private (0700); an export is an ordinary folder.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _publish(staging, out):
    """Move the finished staging directory to ``out``, replacing a previous export."""
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
# Conversion
# ---------------------------------------------------------------------------------------


def export_saved_model(model, path, batch_size=None):
    """Keras 3 ``model.export`` to a SavedModel whose ``serve`` endpoint takes raw pixels.

    ``batch_size=None`` keeps the batch dynamic (serving); 1 fixes it (TFLite source).
    """
    import keras

    spec = keras.InputSpec(shape=(batch_size, *model.input_shape[1:]), dtype="float32")
    model.export(str(path), format="tf_saved_model", input_signature=[spec], verbose=False)


def _linear_chain(model):
    """The model's layers if it is a single-input chain (each layer feeds the next)."""
    layers = model.layers
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    for previous, layer in zip(layers, layers[1:]):
        try:
            if layer.input is not previous.output:
                return None
        except (AttributeError, ValueError):  # a layer used more than once
            return None
    return layers


def stem_factor(model, kind):
    """How many columns ``space_to_depth_stem`` folds for a TFLite format (1: none)."""
    width, channels = model.input_shape[2], model.input_shape[3]
    if kind != "int8":
        return S2D_FLOAT_FACTOR if channels == 1 and width % S2D_FLOAT_FACTOR == 0 else 1
    fits = [f for f in range(2, width + 1)
            if width % f == 0 and f * channels <= S2D_INT8_MAX_CHANNELS]
    return max(fits, default=1)


def space_to_depth_stem(model, factor=S2D_FLOAT_FACTOR):
    """An equivalent model whose first convolution reads ``factor`` pixels per channel.

    A LeNet's first convolution sees 1 channel per kernel tap. XNNPACK's int8 kernels
    pack the reduction dimension in groups of several bytes, so with one channel most of
    each group is padding: on this CPU the 5x5x1->6 convolution alone took 13 us in int8
    against 8 us in float32, more than the rest of the network together (on an Intel
    Xeon with AMX: 124 vs 18 us). Folding
    ``factor`` neighbouring columns into channels (a free reshape, [H,W,C] ->
    [H,W/f,f*C]) turns it into a (kh x ~3)-tap convolution over f*C channels that
    produces f*Cout channels, reshaped back to [H,W,Cout]. The arithmetic is the same
    sums (plus taps with zero weights), so outputs agree to float rounding.

    The input Rescaling (offset 0) and a following BatchNormalization are folded into
    the new kernel, so the converter sees RESHAPE -> CONV_2D -> RESHAPE.

    Returns the rewritten model, or ``model`` unchanged where the pattern does not apply
    (not a chain, strided/dilated first conv, output narrower than the input, ...).
    """
    import keras

    layers = _linear_chain(model)
    if layers is None or len(layers) < 3:
        return model
    index = 1
    scale = 1.0
    if isinstance(layers[index], keras.layers.Rescaling):
        rescale = layers[index]
        if np.ndim(rescale.scale) or np.ndim(rescale.offset) or float(rescale.offset) != 0.0:
            return model
        scale, index = float(rescale.scale), index + 1
    pad_top = pad_bottom = pad_left = pad_right = 0
    if isinstance(layers[index], keras.layers.ZeroPadding2D):
        (pad_top, pad_bottom), (pad_left, pad_right) = layers[index].padding
        index += 1
    conv = layers[index]
    if type(conv) is not keras.layers.Conv2D or conv.data_format != "channels_last":
        return model
    if tuple(conv.strides) != (1, 1) or tuple(conv.dilation_rate) != (1, 1) or conv.groups != 1:
        return model
    height, width, channels = model.input_shape[1:]
    kh, kw = conv.kernel_size
    if conv.padding == "same":
        if pad_top or pad_left:
            return model
        pad_top, pad_left = (kh - 1) // 2, (kw - 1) // 2
        pad_bottom, pad_right = kh - 1 - pad_top, kw - 1 - pad_left
    if pad_left + pad_right != kw - 1:  # only width-preserving convolutions
        return model
    if factor < 2 or width % factor:
        return model

    kernel = np.array(conv.kernel.numpy() if hasattr(conv.kernel, "numpy") else conv.kernel,
                      np.float32) * scale
    filters = kernel.shape[-1]
    bias = (np.array(conv.bias.numpy(), np.float32) if conv.use_bias
            else np.zeros(filters, np.float32))
    after = index + 1
    activation = conv.activation
    if after < len(layers) and isinstance(layers[after], keras.layers.BatchNormalization):
        norm = layers[after]
        if activation is not keras.activations.linear or norm.axis not in (-1, 3, [-1], [3]):
            return model
        gamma = norm.gamma.numpy() if norm.scale else np.ones(filters, np.float32)
        beta = norm.beta.numpy() if norm.center else np.zeros(filters, np.float32)
        multiplier = gamma / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
        kernel = kernel * multiplier
        bias = (bias - norm.moving_mean.numpy()) * multiplier + beta
        after += 1

    # Output column f*j+s reads input column f*j+s+d-pad_left, i.e. block j+bo, slot r.
    offsets = [divmod(s + d - pad_left, factor) for s in range(factor) for d in range(kw)]
    first_block = min(bo for bo, _ in offsets)
    last_block = max(bo for bo, _ in offsets)
    stem_kernel = np.zeros((kh, last_block - first_block + 1, factor * channels, factor * filters),
                           np.float32)
    for s in range(factor):
        for d in range(kw):
            block, slot = divmod(s + d - pad_left, factor)
            stem_kernel[:, block - first_block, slot * channels:(slot + 1) * channels,
                        s * filters:(s + 1) * filters] = kernel[:, d]

    inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name)
    x = keras.layers.Reshape((height, width // factor, factor * channels), name="s2d")(inputs)
    x = keras.layers.ZeroPadding2D(((pad_top, pad_bottom), (-first_block, last_block)),
                                   name="s2d_pad")(x)
    stem = keras.layers.Conv2D(factor * filters, stem_kernel.shape[:2], activation=activation,
                               name=f"{conv.name}_s2d")
    x = stem(x)
    stem.set_weights([stem_kernel, np.tile(bias, factor)])
    x = keras.layers.Reshape((height + pad_top + pad_bottom - kh + 1, width, filters),
                             name="d2s")(x)
    for layer in layers[after:]:
        x = layer(x)
    return keras.Model(inputs, x, name=model.name)


def tflite_graph(model, check_images, factor):
    """(graph, factor used) for a TFLite conversion: ``space_to_depth_stem(model,
    factor)`` when it reproduces the model's probabilities on ``check_images`` (to 1e-5),
    else ``(model, 1)``."""
    rewritten = space_to_depth_stem(model, factor)
    if rewritten is model:
        return model, 1
    difference = np.max(np.abs(np.asarray(model.predict(check_images, verbose=0))
                               - np.asarray(rewritten.predict(check_images, verbose=0))))
    return (rewritten, factor) if difference <= 1e-5 else (model, 1)


def _unsupported_ops(message):
    import re

    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op",
                                message)))
    return ops


def convert_tflite(saved_model_dir, kind, representative=None):
    """Convert a SavedModel to .tflite bytes.

    Args:
        saved_model_dir: a SavedModel written by ``export_saved_model(..., batch_size=1)``.
        kind: "float32", "dynamic" (int8 weights), "float16" (float16 weights) or
            "int8" (full integer with int8 input and output).
        representative: for "int8", a callable returning an iterator of ``[image]`` lists
            (float32 [1,H,W,C] raw pixels) used to calibrate activation ranges.

    Raises:
        BadInput: the model needs ops that are not TFLite builtins.
    """
    import tensorflow as tf

    if kind not in TFLITE_FORMATS:
        raise ValueError(f"unknown TFLite kind {kind!r}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    # Builtins only: a Flex (SELECT_TF_OPS) or custom op would not run on a stock runtime.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "int8":
        if representative is None:
            raise ValueError("int8 conversion needs a representative dataset")
        converter.representative_dataset = representative
        # Every op integer-only (fails rather than silently falling back to float).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        # Per-channel scales for convolutions, one scale per dense layer: per-channel
        # parameters cost 24 bytes per output channel (weights and bias), ~7% of a
        # LeNet-5 file, and bought no accuracy on Fashion-MNIST (0.8778 vs 0.8786).
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001  ConverterError and friends
        message = str(error)
        ops = _unsupported_ops(message)
        if ops:
            raise BadInput(f"the model needs ops that are not TFLite builtins ({', '.join(ops)}); "
                           "Flex/custom ops are not exported") from None
        first = message.strip().splitlines()[0][:300] if message.strip() else type(error).__name__
        raise BadInput(f"TFLite {kind} conversion failed: {first}") from None


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
               progress=True, log=print, safe_mode=True):
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
    formats = tuple(f for f in TFLITE_FORMATS if f in formats)
    out = Path(out_dir) if out_dir else default_export_dir(run_dir)
    model = _load_run_model(model_path, safe_mode)  # a corrupt model fails before anything is written
    missing_parents = [p for p in out.parents if not p.exists()]
    staging = _make_staging_dir(out)  # fails early on an unwritable destination
    try:
        report = _export_into(staging, model, run_dir, formats, calibration_samples,
                              latency_number, progress, log)
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


def _load_run_model(model_path, safe_mode=True):
    from lenet_keras.train import load_model

    try:
        return load_model(model_path, safe_mode=safe_mode)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001  truncated zip, wrong file, foreign layers
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise BadInput(f"cannot load '{model_path}' ({type(error).__name__}: {first}); "
                       "is it a .keras file written by fit?") from None


def _export_into(staging, model, run_dir, formats, calibration_samples, latency_number,
                 progress, log):
    """Write every file of the export into ``staging``; returns the report."""
    import keras
    import tensorflow as tf

    from lenet_keras.train import load_bundle, load_config

    model_path = run_dir / "model.keras"
    config = load_config(run_dir)
    bundle = load_bundle(config, augment=False)
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

    if formats:
        # The converter's sources: the same model with a static batch of one image and a
        # space-to-depth first convolution (both for XNNPACK; see the module docstring).
        sources = Path(tempfile.mkdtemp(prefix="tflite-src-", dir=staging))
        try:
            calibration = None
            if "int8" in formats:
                calibration, _ = dataset_arrays(bundle.train, calibration_samples)
            timers, graphs = {}, {}
            for kind in formats:
                factor = stem_factor(model, kind)
                if factor not in graphs:
                    graph, used = tflite_graph(model, x_test[:256], factor)
                    graphs[factor] = (sources / f"s2d{factor}", used)
                    export_saved_model(graph, graphs[factor][0], batch_size=1)
                source, used = graphs[factor]
                report_formats[kind], timers[kind] = _export_tflite(
                    kind, source, staging, calibration, x_test, y_test,
                    keras_probabilities, progress)
                report_formats[kind]["space_to_depth"] = used
        finally:
            shutil.rmtree(sources, ignore_errors=True)
        log(f"timing {', '.join(formats)} (LiteRT, 1 thread)")
        for kind, latency in measure_latencies_us(timers, number=latency_number).items():
            report_formats[kind]["latency_us"] = latency

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
                    "already in the file's dtype"),
        "created": datetime.now(timezone.utc).isoformat(),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "ai_edge_litert": version("ai-edge-litert")},
        "formats": report_formats,
    }


def _export_tflite(kind, source, staging, calibration, x_test, y_test, keras_probabilities,
                   progress):
    """Convert, write and evaluate one TFLite format.

    Returns its report entry and a single-image call to time (one test image after
    another, already in the file's input dtype).
    """
    from lenet_keras.predict import TFLiteModel

    representative = None
    if kind == "int8":
        def representative():
            with _progress(len(calibration), "calibrating int8", progress) as bar:
                for image in calibration:
                    bar.update(1)
                    yield [image[None].astype(np.float32)]

    content = convert_tflite(source, kind, representative)
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


# ---------------------------------------------------------------------------------------
# Reading the report
# ---------------------------------------------------------------------------------------


def drops_over(report, max_drop_pp):
    """{format: drop} for every TFLite/SavedModel format whose test accuracy is more than
    ``max_drop_pp`` percentage points below the Keras model's."""
    return {name: entry["accuracy_drop_pp"] for name, entry in report["formats"].items()
            if name != "keras" and entry["accuracy_drop_pp"] > max_drop_pp}


def _tensor_text(info):
    if info["dtype"].startswith("float"):
        return info["dtype"]
    return f"{info['dtype']} s={info['scale']:.4g} z={info['zero_point']}"


def format_table(report):
    """The report as a fixed-width table, one row per format."""
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
    return "\n".join(rows)
