"""Keras model -> SavedModel -> .tflite, and the graph rewrites that make the .tflite
files fast. ``export.py`` stages, verifies and reports; this module only converts.

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
"""

import numpy as np

from lenet_keras.errors import BadInput, first_line
from lenet_keras.quiet import import_keras, import_tensorflow, native_output_captured

TFLITE_FORMATS = ("float32", "dynamic", "float16", "int8")
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


def export_saved_model(model, path, batch_size=None):
    """Keras 3 ``model.export`` to a SavedModel whose ``serve`` endpoint takes raw pixels.

    ``batch_size=None`` keeps the batch dynamic (serving); 1 fixes it (TFLite source).
    """
    keras = import_keras()

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
    keras = import_keras()

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
    tf = import_tensorflow()

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
        with native_output_captured(f"converting to TFLite {kind}"):
            return converter.convert()
    except Exception as error:  # noqa: BLE001  ConverterError and friends
        message = str(error)
        ops = _unsupported_ops(message)
        if ops:
            raise BadInput(f"the model needs ops that are not TFLite builtins ({', '.join(ops)}); "
                           "Flex/custom ops are not exported") from None
        raise BadInput(f"TFLite {kind} conversion failed: {first_line(error, 300)}") from None


