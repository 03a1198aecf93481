"""Keras model -> SavedModel -> .tflite (and -> .onnx), and the graph rewrites that make
the .tflite files fast. ``export.py`` stages, verifies and reports; this module only
converts. The ``*_file(job, fmt)`` functions at the end are the converters the format
table (``formats.FORMATS``) names: each writes one format's file into the staging folder.

- Keras 3 models do not go through ``TFLiteConverter.from_keras_model``; the converter
  reads a SavedModel that ``model.export`` writes.
- The .tflite files take ONE image, [1, H, W, C] (the on-device case). With a dynamic
  batch the converter keeps Flatten's run-time shape arithmetic (SHAPE, STRIDED_SLICE,
  PACK feeding RESHAPE); those int32 ops are not XNNPACK ops, so the graph is cut in two
  delegate partitions with the shape ops between them. With a static batch of 1 the
  whole network is one XNNPACK partition (int8: all but the int8 SOFTMAX, which stays
  on the builtin kernel).
- Convolutions over few channels are rewritten to read several columns as channels
  (``fold_columns``): XNNPACK runs a 1-channel int8 convolution much slower than float32
  (LeNet-5's C1: 13 vs 8 us on an AMD EPYC, 124 vs 18 us on an Intel Xeon with AMX; most
  of the int8 model's time). Reading 7 columns as 7 channels makes int8 LeNet-5 2x (AMD)
  to 3.8x (Intel) faster; folding C3's column pairs (6 -> 12 channels) makes it another
  1.35x faster on the Intel Xeon; float formats fold pairs of C1's columns (1.2-1.3x
  faster). Same arithmetic.
- int8 graphs take average pools (lenet1; lenet5_classic's Subsampling) as 2x2 stride-2
  depthwise convolutions (``pools_as_depthwise``): XNNPACK has no int8 AVERAGE_POOL_2D,
  so each pool cut the graph into another partition (int8 1.30x / 1.15x float32's time,
  now 0.52x / 0.50x on an AMD EPYC). Same arithmetic; float formats keep their pools.
- Rescaling (x/255) and the 28->32 zero padding are folded into that first convolution
  (its weights scaled, VALID padding on 32 becomes SAME on 28), so they cost nothing and
  the int8 input is raw pixels: scale 1, zero point -128.
- Only TFLite builtin ops are allowed (no Flex / SELECT_TF_OPS, no custom ops); a model
  that needs more fails with the list of offending ops.
- int8 is calibrated on images from the run's TRAINING split (never the test split the
  report measures), with per-channel weight scales for convolutions and per-tensor ones
  for dense layers (smaller file, same accuracy; see ``convert_tflite``).
"""

import numpy as np

from lenet_keras.errors import BadInput, first_line
from lenet_keras.quiet import import_keras, import_tensorflow, native_output_captured

# Column folding (see fold_columns). lenet5 on Fashion-MNIST, LiteRT 2.3, 1 thread, us per
# image, folding only the first convolution: no rewrite / factor 2 / factor 7:
#   AMD EPYC (AVX-512 VNNI):  float32 18.3 / 14.9 / 26.4    int8  17.8 / 9.3 / 8.6
#   Intel Xeon (AMX):         float32 30.8 / 24.8 / 34.2    int8 147.5 / 67.3 / 38.4
# With C1 folded by 7, int8 C3 (6 channels) still took 19 us against 8 us in float32 on
# the Intel Xeon (AMX); folding its column pairs too (12 channels) brought int8 LeNet-5
# from 1.16x to 0.85x float32's time there (benchmarks/latency.py). Larger factors cost
# more zero weights (file size, and multiply-adds on CPUs without AMX).
# Float formats fold column pairs of a 1-channel first convolution; int8 folds every
# convolution by the largest factor that keeps it within FOLD_INT8_MAX_CHANNELS channels.
FOLD_FLOAT_FACTOR = 2
FOLD_INT8_MAX_CHANNELS = 12


def export_saved_model(model, path, batch_size=None, dtype="float32"):
    """Keras 3 ``model.export`` to a SavedModel whose ``serve`` endpoint takes raw pixels.

    ``batch_size=None`` keeps the batch dynamic (serving); 1 fixes it (TFLite source).
    """
    keras = import_keras()

    spec = keras.InputSpec(shape=(batch_size, *model.input_shape[1:]), dtype=dtype)
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


def _as_array(value):
    return np.array(value.numpy() if hasattr(value, "numpy") else value, np.float32)


def _conv_blocks(layers):
    """Walk a chain's layers (after the Input) and yield ``(start, stop, block)``: layers
    ``[start, stop)`` form one foldable convolution block, or ``block`` is None for a
    layer that is kept as it is.

    A block is ``[Rescaling] [ZeroPadding2D] Conv2D [BatchNormalization]`` with a plain
    stride-1 convolution: the Rescaling (scalar, offset 0) and BatchNormalization fold
    into the kernel and bias, the zero padding into the folded convolution's padding.
    """
    keras = import_keras()

    index = 1
    while index < len(layers):
        at, scale, padding = index, 1.0, ((0, 0), (0, 0))
        layer = layers[at]
        if (isinstance(layer, keras.layers.Rescaling) and not np.ndim(layer.scale)
                and not np.ndim(layer.offset) and float(layer.offset) == 0.0):
            scale, at = float(layer.scale), at + 1
        if at < len(layers) and isinstance(layers[at], keras.layers.ZeroPadding2D):
            padding, at = layers[at].padding, at + 1
        conv = layers[at] if at < len(layers) else None
        if not _foldable_conv(conv):
            yield index, index + 1, None
            index += 1
            continue
        stop, norm = at + 1, None
        if stop < len(layers) and isinstance(layers[stop], keras.layers.BatchNormalization):
            norm = layers[stop]
            if conv.activation is not keras.activations.linear or norm.axis not in (-1, 3, [-1], [3]):
                yield index, index + 1, None
                index += 1
                continue
            stop += 1
        source = layers[index].input  # the tensor entering the block (before any padding)
        yield index, stop, {"conv": conv, "scale": scale, "padding": padding, "norm": norm,
                            "input_shape": tuple(source.shape[1:]),
                            "output_width": int(conv.output.shape[2])}
        index = stop


def _foldable_conv(layer):
    keras = import_keras()

    return (type(layer) is keras.layers.Conv2D and layer.data_format == "channels_last"
            and tuple(layer.strides) == (1, 1) and tuple(layer.dilation_rate) == (1, 1)
            and layer.groups == 1)


def fold_plan(model, kind):
    """{convolution name: columns to fold} for one TFLite format (see ``fold_columns``).

    float formats fold pairs of columns of a 1-channel first convolution; int8 folds every
    stride-1 convolution, by the largest factor that divides its input and output widths
    and keeps ``factor * channels`` within FOLD_INT8_MAX_CHANNELS.
    """
    layers = _linear_chain(model)
    if layers is None:
        return {}
    plan = {}
    for _, _, block in _conv_blocks(layers):
        if block is None:
            continue
        _, width, channels = block["input_shape"]
        widths = (width, block["output_width"])
        if kind != "int8":
            if not plan and channels == 1 and all(w % FOLD_FLOAT_FACTOR == 0 for w in widths):
                plan[block["conv"].name] = FOLD_FLOAT_FACTOR
            break  # float formats: the first convolution only
        fits = [f for f in range(2, width + 1)
                if all(w % f == 0 for w in widths) and f * channels <= FOLD_INT8_MAX_CHANNELS]
        if fits:
            plan[block["conv"].name] = max(fits)
    return plan


def stem_factor(model, kind):
    """How many columns the first convolution folds for a TFLite format (1: none)."""
    layers = _linear_chain(model)
    first = next((block["conv"].name for _, _, block in _conv_blocks(layers or []) if block),
                 None)
    return fold_plan(model, kind).get(first, 1)


def fold_columns(model, plan):
    """An equivalent model whose convolutions read several columns per channel.

    ``plan`` maps convolution names to a factor f. Each such convolution's input is
    reshaped [H, W, C] -> [H, W/f, f*C] (free: the same bytes) and the convolution becomes
    a (kh x ~(kw/f + 1))-tap one over f*C channels producing f*F channels, reshaped back
    to [H', W', F]. The sums are the same (plus taps with zero weights), so outputs agree
    to float rounding.

    Why: XNNPACK's int8 kernels pay for channels in whole groups per kernel tap (on CPUs
    with AMX, one 64-byte row of a tile per tap and 16 output pixels, whatever the
    channel count), so a convolution over 1 (C1) or 6 (C3) channels pays mostly for
    padding. Folding f columns divides taps x pixels by about f. See FOLD_INT8_MAX_CHANNELS
    for the measurements.

    A Rescaling (scalar, offset 0) and ZeroPadding2D right before a folded convolution
    and a BatchNormalization right after it are folded into its kernel, bias and padding.
    Returns ``model`` unchanged when nothing applies (not a chain, no factor >= 2 fits).
    """
    keras = import_keras()

    layers = _linear_chain(model)
    plan = {name: factor for name, factor in plan.items() if factor >= 2}
    if layers is None or not plan:
        return model
    inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name)
    x, changed = inputs, False
    for start, stop, block in _conv_blocks(layers):
        factor = plan.get(block["conv"].name, 1) if block else 1
        folded = _folded_conv(x, block, factor) if factor >= 2 else None
        if folded is None:
            for layer in layers[start:stop]:
                x = layer(x)
        else:
            x, changed = folded, True
    return keras.Model(inputs, x, name=model.name) if changed else model


def _folded_conv(x, block, factor):
    """Apply ``block`` (see _conv_blocks) to ``x`` with ``factor`` columns folded into
    channels; None when the widths do not divide by ``factor``."""
    keras = import_keras()

    conv = block["conv"]
    height, width, channels = x.shape[1:]
    kh, kw = conv.kernel_size
    (pad_top, pad_bottom), (pad_left, pad_right) = block["padding"]
    if conv.padding == "same":
        pad_top, pad_left = pad_top + (kh - 1) // 2, pad_left + (kw - 1) // 2
        pad_bottom, pad_right = pad_bottom + kh // 2, pad_right + kw // 2
    out_height = height + pad_top + pad_bottom - kh + 1
    out_width = width + pad_left + pad_right - kw + 1
    if width % factor or out_width % factor:
        return None

    kernel = _as_array(conv.kernel) * block["scale"]
    filters = kernel.shape[-1]
    bias = _as_array(conv.bias) if conv.use_bias else np.zeros(filters, np.float32)
    if block["norm"] is not None:
        norm = block["norm"]
        gamma = _as_array(norm.gamma) if norm.scale else np.ones(filters, np.float32)
        beta = _as_array(norm.beta) if norm.center else np.zeros(filters, np.float32)
        multiplier = gamma / np.sqrt(_as_array(norm.moving_variance) + norm.epsilon)
        kernel = kernel * multiplier
        bias = (bias - _as_array(norm.moving_mean)) * multiplier + beta

    # Output column f*j+s reads input column f*j+s+d-pad_left: block j+b, slot r. Taps
    # that only ever read padding (outside [0, W) for every j) are dropped.
    blocks_in, blocks_out = width // factor, out_width // factor
    taps = []
    for s in range(factor):
        for d in range(kw):
            column = s + d - pad_left
            if any(0 <= factor * j + column < width for j in range(blocks_out)):
                taps.append((*divmod(column, factor), s, d))
    first = min(b for b, *_ in taps)
    last = max(b for b, *_ in taps)
    folded_kernel = np.zeros((kh, last - first + 1, factor * channels, factor * filters),
                             np.float32)
    for b, r, s, d in taps:
        folded_kernel[:, b - first, r * channels:(r + 1) * channels,
                      s * filters:(s + 1) * filters] = kernel[:, d]
    pad_before, pad_after = max(0, -first), max(0, blocks_out - 1 + last - (blocks_in - 1))

    name = conv.name
    x = keras.layers.Reshape((height, blocks_in, factor * channels), name=f"{name}_fold")(x)
    if pad_top or pad_bottom or pad_before or pad_after:
        x = keras.layers.ZeroPadding2D(((pad_top, pad_bottom), (pad_before, pad_after)),
                                       name=f"{name}_fold_pad")(x)
    folded = keras.layers.Conv2D(factor * filters, folded_kernel.shape[:2],
                                 activation=conv.activation, name=f"{name}_folded")
    x = folded(x)
    folded.set_weights([folded_kernel, np.tile(bias, factor)])
    return keras.layers.Reshape((out_height, out_width, filters), name=f"{name}_unfold")(x)


def space_to_depth_stem(model, factor=FOLD_FLOAT_FACTOR):
    """``fold_columns`` of the first convolution only (``model`` itself if none fits)."""
    layers = _linear_chain(model)
    first = next((block["conv"].name for _, _, block in _conv_blocks(layers or []) if block),
                 None)
    return fold_columns(model, {first: factor}) if first else model


def pools_as_depthwise(model):
    """An equivalent model whose average pools are depthwise convolutions (for int8).

    Each AveragePooling2D, and lenet5_classic's Subsampling (average x coefficient + bias,
    then its activation), becomes a DepthwiseConv2D of the pool's size and stride with
    weights coefficient / area (and the bias): the same sums. Why: XNNPACK (LiteRT 2.3)
    does not take int8 AVERAGE_POOL_2D; each pool ran in LiteRT's reference kernel and
    split the int8 graph into 3 XNNPACK partitions, so int8 lenet1 and lenet5_classic
    were 1.30x and 1.15x float32's time on AMD EPYC. Folded and rewritten: 0.52x and 0.51x
    (benchmarks/int8_partitions.py, docs/SPEED.md). ``model`` must be a chain, as
    ``fold_columns`` leaves one (its layers, in order, each feeding the next; a folded
    model reuses the original's pools, so ``_linear_chain`` cannot tell); it is returned
    unchanged when it has no average pool.
    """
    keras = import_keras()
    from lenet_keras.models import Subsampling

    pools = (keras.layers.AveragePooling2D, Subsampling)
    layers = model.layers
    if not any(isinstance(layer, pools) for layer in layers):
        return model
    x = inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name)
    for layer in layers[1:]:
        size = getattr(layer, "pool_size", None)
        size = tuple((size, size) if isinstance(size, int) else size or ())
        # A "same" pool averages over the pixels inside only, a convolution over zeros too.
        if (not isinstance(layer, pools) or getattr(layer, "padding", "valid") != "valid"
                or tuple(getattr(layer, "strides", None) or size) != size):
            x = layer(x)
            continue
        subsampling = isinstance(layer, Subsampling)
        channels = x.shape[-1]
        coefficient = _as_array(layer.coefficient) if subsampling else np.ones(channels, np.float32)
        conv = keras.layers.DepthwiseConv2D(
            size, strides=size, use_bias=subsampling,
            activation=layer.activation if subsampling else None, name=f"{layer.name}_depthwise")
        x = conv(x)
        kernel = np.broadcast_to(coefficient / (size[0] * size[1]), (*size, channels))
        conv.set_weights([kernel.reshape(*size, channels, 1).astype(np.float32)]
                         + ([_as_array(layer.bias)] if subsampling else []))
    return keras.Model(inputs, x, name=model.name)


def graph_rewrites(model, kind):
    """(fold plan, average pools as depthwise convolutions?) of the graph ``export``
    converts for the TFLite kind ``kind``: columns folded as ``fold_plan`` says, and for
    int8 only the pools rewritten (float32 XNNPACK takes AVERAGE_POOL_2D)."""
    return fold_plan(model, kind), kind == "int8"


def shipped_graph(model, kind, check_images):
    """(graph, plan used): the Keras graph ``export`` converts for ``kind`` (the rewrites
    of ``graph_rewrites``, checked by ``tflite_graph`` on ``check_images``)."""
    plan, pools = graph_rewrites(model, kind)
    return tflite_graph(model, check_images, plan, pools)


def tflite_graph(model, check_images, plan, pools=False):
    """(graph, plan used) for a TFLite conversion: ``fold_columns(model, plan)`` (then,
    with ``pools``, ``pools_as_depthwise``) when it reproduces the model's probabilities
    on ``check_images`` (to 1e-5), else ``(model, {})``."""
    rewritten = fold_columns(model, plan)
    if pools and _linear_chain(model) is not None:  # then the folded model is one too
        rewritten = pools_as_depthwise(rewritten)
    if rewritten is model:
        return model, {}
    difference = np.max(np.abs(np.asarray(model.predict(check_images, verbose=0))
                               - np.asarray(rewritten.predict(check_images, verbose=0))))
    return (rewritten, dict(plan)) if difference <= 1e-5 else (model, {})


# ITU-R 601 luma, as PIL's "L" mode and data.to_grayscale (what predict feeds the model).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def uint8_graph(model, rgb):
    """``model`` behind a uint8 input: with ``rgb``, an RGB one, the input MediaPipe Tasks'
    ImageClassifier feeds (it accepts 3- or 4-channel uint8 or float32 inputs only);
    else one of the model's own channels (the web page's float32 graph: LiteRT.js tensors
    are float32, int32 or uint8, and the page hands over uint8 pixels).

    uint8 [H, W, 3] -> float32 -> for a 1-channel model, luma rounded to whole levels
    (a 1x1 convolution and ROUND: the same pixels ``predict`` computes with
    ``data.to_grayscale``) -> ``model`` -> probabilities.
    """
    keras = import_keras()

    height, width, channels = model.input_shape[1:]
    inputs = keras.Input((height, width, 3 if rgb else channels), dtype="uint8", name="image")
    x = keras.ops.cast(inputs, "float32")
    if channels == 1 and rgb:
        luma = keras.layers.Conv2D(1, 1, use_bias=False, name="luma")
        x = luma(x)
        luma.set_weights([np.array(LUMA_WEIGHTS, np.float32).reshape(1, 1, 3, 1)])
        x = keras.ops.round(x)
    return keras.Model(inputs, model(x), name=f"{model.name}_{'rgb_' if rgb else ''}uint8")


def _unsupported_ops(message):
    import re

    ops = sorted(set(re.findall(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op",
                                message)))
    return ops


def convert_tflite(saved_model_dir, kind, representative=None, io_types=("int8", "int8")):
    """Convert a SavedModel to .tflite bytes.

    Args:
        saved_model_dir: a SavedModel written by ``export_saved_model(..., batch_size=1)``.
        kind: "float32", "dynamic" (int8 weights), "float16" (float16 weights) or
            "int8" (full integer with int8 input and output).
        representative: for "int8", a callable returning an iterator of ``[image]`` lists
            (float32 [1,H,W,C] raw pixels) used to calibrate activation ranges.
        io_types: for "int8", the (input, output) dtypes: ("int8", "int8") for the int8
            file, ("uint8", "float32") for the web page's (LiteRT.js tensors are float32,
            int32 or uint8; the ops inside are the same int8 ones).

    Raises:
        BadInput: the model needs ops that are not TFLite builtins.
    """
    tf = import_tensorflow()

    if kind not in ("float32", "dynamic", "float16", "int8"):  # the kinds handled below
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
        converter.inference_input_type = getattr(tf, io_types[0])
        converter.inference_output_type = getattr(tf, io_types[1])
        # Per-channel scales for convolutions, one scale per dense layer: per-channel
        # parameters cost 24 bytes per output channel (weights and bias), ~7% of a
        # LeNet-5 file, and bought no accuracy on Fashion-MNIST (0.8778 vs 0.8786).
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    try:
        with native_output_captured(f"converting to TFLite {kind}"):
            return converter.convert()
    except Exception as error:  # noqa: BLE001  ConverterError and friends
        message = str(error)
        ops = _unsupported_ops(message)
        if ops:
            raise BadInput(f"the model needs ops that are not TFLite builtins ({', '.join(ops)}); "
                           "Flex/custom ops are not exported") from None
        raise BadInput(f"TFLite {kind} conversion failed: {first_line(error, 300)}") from None


# ---------------------------------------------------------------------------------------
# Converters of the format table: fmt(job) -> (path written, extra report fields)
#
# ``job`` (export.ExportJob) holds the Keras model, the staging folder, a scratch folder
# (``sources``), test images (``x_test``, to check graph rewrites), calibration images,
# the metadata every .tflite carries (``describe``) and a progress-bar factory.
# ---------------------------------------------------------------------------------------


def keras_file(job, fmt):
    """The reference: the run's own model.keras, not copied into the export."""
    return job.model_path, {}


def saved_model_file(job, fmt):
    """SavedModel for TF Serving: dynamic batch, raw pixels in, probabilities out."""
    path = job.staging / fmt.file
    export_saved_model(job.model, path)
    return path, {}


def _tflite_source(job, kind):
    """(SavedModel folder, plan used) of the graph ``kind`` converts (``graph_rewrites``)
    with a static batch of one image (all for XNNPACK); one per distinct rewrite, shared
    by the formats alike."""
    plan, pools = graph_rewrites(job.model, kind)
    key = (tuple(sorted(plan.items())), pools)
    if key not in job.graphs:
        graph, used = tflite_graph(job.model, job.x_test[:256], plan, pools)
        job.graphs[key] = (job.sources / f"graph{len(job.graphs)}", used)
        export_saved_model(graph, job.graphs[key][0], batch_size=1)
    return job.graphs[key]


def representative_images(job, name):
    """The calibration images as the converter wants them (a callable returning an
    iterator of [float32 [1,H,W,C]] lists), with a progress bar."""
    def representative():
        with job.progress_bar(len(job.calibration), f"calibrating {name}") as bar:
            for image in job.calibration:
                bar.update(1)
                yield [image[None].astype(np.float32)]

    return representative


def tflite_file(job, fmt):
    """model_<kind>.tflite with its metadata; reports which columns were folded."""
    from lenet_keras.metadata import add_metadata

    source, used = _tflite_source(job, fmt.name)
    representative = representative_images(job, fmt.name) if fmt.calibrated else None
    path = job.staging / fmt.file
    path.write_bytes(add_metadata(convert_tflite(source, fmt.name, representative),
                                  **job.describe))
    # {convolution: columns folded into channels}, see fold_columns
    return path, {"folded_columns": used}


def web_model_bytes(job, kind="int8"):
    """The model file of the web page (export --web), with its metadata: for ``kind``
    "int8", the int8 file's ops and calibration (same source graph, same images, so the
    same int8 numbers) behind a uint8 input of raw pixels and a float32 output of
    probabilities; for "float32" (where int8 is the slower here), the float32 file's graph
    behind the same uint8 input. LiteRT.js cannot take or give int8 tensors. Returns
    (bytes, columns folded)."""
    from lenet_keras.metadata import add_metadata

    if kind == "int8":
        source, used = _tflite_source(job, "int8")
        content = convert_tflite(source, "int8", representative_images(job, "web"),
                                 io_types=("uint8", "float32"))
    else:
        graph, used = shipped_graph(job.model, kind, job.x_test[:256])
        source = job.sources / f"web-{kind}"
        export_saved_model(uint8_graph(graph, rgb=False), source, batch_size=1,
                           dtype="uint8")
        content = convert_tflite(source, kind)
    return add_metadata(content, **job.describe), used


def mediapipe_file(job, fmt):
    """What MediaPipe Tasks' ImageClassifier loads as it is: float32 inside, RGB uint8
    input, float32 output, metadata."""
    from lenet_keras.metadata import add_metadata

    graph, _ = shipped_graph(job.model, "float32", job.x_test[:256])
    source = job.sources / "mediapipe"
    export_saved_model(uint8_graph(graph, rgb=True), source, batch_size=1, dtype="uint8")
    path = job.staging / fmt.file
    path.write_bytes(add_metadata(convert_tflite(source, "float32"),
                                  **{**job.describe, "channels": 3}))
    return path, {}


def onnx_file(job, fmt):
    """model.onnx: Keras 3's ``model.export(format="onnx")`` (tf2onnx on the TensorFlow
    backend), dynamic batch, raw 0-255 float32 pixels in, probabilities out; the labels
    ride in the file's metadata_props (runtimes.ONNX_LABELS_KEY)."""
    import warnings

    import onnx

    from lenet_keras.runtimes import ONNX_LABELS_KEY

    keras = import_keras()
    path = job.staging / fmt.file
    spec = keras.InputSpec(shape=(None, *job.model.input_shape[1:]), dtype="float32",
                           name="image")
    try:
        # Keras patches tf2onnx for numpy 2 and numpy warns about it (np.object).
        with warnings.catch_warnings(), native_output_captured("converting to ONNX"):
            warnings.simplefilter("ignore")
            job.model.export(str(path), format="onnx", input_signature=[spec], verbose=False)
            if len(onnx.load(str(path)).graph.input) > 1:
                _frozen_onnx(job.model, path)
    except Exception as error:  # noqa: BLE001  tf2onnx fails in many ways
        raise BadInput(f"ONNX conversion failed: {first_line(error, 300)}") from None
    model = onnx.load(str(path))
    if len(model.graph.input) != 1:
        raise BadInput(f"ONNX conversion left {len(model.graph.input)} inputs, not one image")
    model.metadata_props.add(key=ONNX_LABELS_KEY, value="\n".join(job.describe["labels"]))
    model.doc_string = job.describe["description"]
    onnx.save(model, str(path))
    return path, {}


def _frozen_onnx(model, path):
    """Convert again from a frozen graph: tf2onnx's ``from_function`` (what Keras calls)
    turns a constant tensor the model captures (not a variable: lenet5_classic's C3
    connection mask) into a second graph input; freezing makes every capture a constant.
    Runs right after ``model.export(format="onnx")``, which patched tf2onnx for numpy 2."""
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    tf = import_tensorflow()
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="image")
    function = tf.function(lambda image: model(image, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=[frozen.inputs[0].name],
        output_names=[tensor.name for tensor in frozen.outputs], output_path=str(path))
