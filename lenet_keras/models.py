"""LeNet-5 and its family as Keras functional models (their names, arguments and recipes:
registry.py).

This module imports keras only (no tensorflow), so the builders run under any Keras
backend (TensorFlow for training and export here, JAX on a GPU machine).

Every model takes images exactly as a dataset gives them: raw pixel values 0-255 at the
dataset's size, grayscale or RGB. Scaling, and the paper's zero padding of 28x28 digits to
32x32, happen inside the model, so an exported file can be fed pixels directly.

    >>> model = build_model("lenet5", input_shape=(32, 32, 1), num_classes=10)
    >>> model.count_params()
    61706
"""

import inspect
import json

import keras
import numpy as np
from keras import layers, ops

from lenet_keras.checks import MAX_CLASSES
from lenet_keras.config import MAX_IMAGE_SIZE
from lenet_keras.errors import BadInput
from lenet_keras.registry import builder_name, check_input

# LeNet-5 was designed for 32x32 inputs: 28x28 MNIST digits padded by 2 pixels so that
# stroke end-points can reach the centre of the top feature detectors' receptive fields.
LENET_INPUT_SIZE = 32

# The largest builder arguments: maps or units per layer, layers per list, the width
# multiplier. widths=[100000, 100000] asked TensorFlow for 1 TB and died in 50 lines of
# OOM; 1,024 maps is 4x the registry's widest layer (mlp's 300, mobilenet_mini's 256) and
# 16 layers 3x its longest list. Arguments at these limits still build, each alone; two at
# once (mobilenet_mini's width 4 with 1,024-map blocks) can still ask more than a machine has.
MAX_UNITS = 1024
MAX_LAYERS = 16
MAX_WIDTH = 4.0


# ---------------------------------------------------------------------------------------
# Layers of the faithful 1998 model. Registered so that .keras files load in safe mode.
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="lenet_keras")
def scaled_tanh(x):
    """LeCun's squashing function f(a) = 1.7159 tanh(2a/3) (1998, Appendix A).

    Chosen so that f(1) = 1 and f(-1) = -1, with maximal second derivative at +-1.
    """
    return 1.7159 * ops.tanh(x * (2.0 / 3.0))


@keras.saving.register_keras_serializable(package="lenet_keras")
class Subsampling(layers.Layer):
    """The paper's S2/S4 layers: 2x2 average, times a trainable coefficient, plus a
    trainable bias, per feature map (2 parameters per map), then the squashing function.

    Modern LeNets use a parameter-free max-pool instead.
    """

    def __init__(self, pool_size=2, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        channels = input_shape[-1]
        self.coefficient = self.add_weight(
            name="coefficient", shape=(channels,), initializer="ones"
        )
        self.bias = self.add_weight(name="bias", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        pooled = ops.average_pool(inputs, self.pool_size, strides=self.pool_size)
        return self.activation(pooled * self.coefficient + self.bias)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, height // self.pool_size, width // self.pool_size, channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            pool_size=self.pool_size,
            activation=keras.activations.serialize(self.activation),
        )
        return config


# LeCun et al. 1998, Table I: which of the 6 S2 maps each of the 16 C3 maps sees.
# Six maps take 3 contiguous S2 maps, six take 4 contiguous, three take 4 discontinuous,
# and the last takes all six. The paper breaks symmetry this way and keeps the
# connection count (and parameters: 60*25 + 16 = 1,516) down.
C3_CONNECTIONS = (
    [[(i + k) % 6 for k in range(3)] for i in range(6)]
    + [[(i + k) % 6 for k in range(4)] for i in range(6)]
    + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]
    + [[0, 1, 2, 3, 4, 5]]
)


@keras.saving.register_keras_serializable(package="lenet_keras")
class PartialConv2D(layers.Layer):
    """A valid, stride-1 convolution where output map j only sees the input maps in
    ``connections[j]`` (the paper's C3).

    Only the connected kernels are trainable weights (so the parameter count is the
    paper's); they are scattered into a full kernel with a constant 0/1 selection tensor,
    which keeps the op a plain Conv2D for every backend and for TFLite.
    """

    def __init__(self, connections, kernel_size=5, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.connections = [list(c) for c in connections]
        self.kernel_size = kernel_size
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        in_maps = input_shape[-1]
        out_maps = len(self.connections)
        pairs = [(i, j) for j, inputs in enumerate(self.connections) for i in inputs]
        if max(i for i, _ in pairs) >= in_maps:
            raise ValueError(f"connections refer to input map >= {in_maps}")
        # selection[k, i, j] = 1 where connection k joins input map i to output map j.
        selection = [[[0.0] * out_maps for _ in range(in_maps)] for _ in pairs]
        for k, (i, j) in enumerate(pairs):
            selection[k][i][j] = 1.0
        self.selection = ops.convert_to_tensor(selection, dtype=self.compute_dtype)
        # LeCun uniform: each output map's fan-in is (its input maps) x 5 x 5.
        mean_fan_in = self.kernel_size**2 * len(pairs) / out_maps
        limit = (3.0 / mean_fan_in) ** 0.5
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, len(pairs)),
            initializer=keras.initializers.RandomUniform(-limit, limit),
        )
        self.bias = self.add_weight(name="bias", shape=(out_maps,), initializer="zeros")

    def call(self, inputs):
        full_kernel = ops.einsum("hwk,kio->hwio", self.kernel, self.selection)
        outputs = ops.conv(inputs, full_kernel, strides=1, padding="valid") + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        shrink = self.kernel_size - 1
        return (batch, height - shrink, width - shrink, len(self.connections))

    def get_config(self):
        config = super().get_config()
        config.update(
            connections=self.connections,
            kernel_size=self.kernel_size,
            activation=keras.activations.serialize(self.activation),
        )
        return config


@keras.saving.register_keras_serializable(package="lenet_keras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing (Szegedy et al. 2016).

    Keras' sparse loss has no ``label_smoothing``; this keeps integer labels (so the
    pipelines and the accuracy metric stay as they are): against targets
    (1 - e) one-hot + e / K, the loss is (1 - e) * CE + e * mean over classes of -log p.
    """

    def __init__(self, smoothing=0.1, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smoothing = smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log(ops.clip(y_pred, 1e-7, 1.0))
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        picked = ops.take_along_axis(log_probs, ops.expand_dims(labels, -1), axis=-1)[:, 0]
        return -(1.0 - self.smoothing) * picked - self.smoothing * ops.mean(log_probs, axis=-1)

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}


# ---------------------------------------------------------------------------------------
# Shared blocks
# ---------------------------------------------------------------------------------------


def _pixels_in(inputs, scale=1.0 / 255, offset=0.0, pad_to=LENET_INPUT_SIZE):
    """Raw 0-255 pixels -> scaled floats, zero-padded up to ``pad_to`` on each side.

    Padding happens after scaling, so the border is the scaled background (0).
    """
    x = layers.Rescaling(scale, offset, name="rescale")(inputs)
    height, width = inputs.shape[1], inputs.shape[2]
    if pad_to and (height < pad_to or width < pad_to):
        pad_h, pad_w = max(pad_to - height, 0), max(pad_to - width, 0)
        x = layers.ZeroPadding2D(
            ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)),
            name="pad",
        )(x)
    return x


def _conv_pool(x, filters, name, kernel_size=5, batch_norm=False, pool_first=False):
    """conv -> (batch norm) -> ReLU -> 2x2 max-pool, layers named ``{name}_conv`` etc.

    ``pool_first``: conv -> max-pool -> (batch norm) -> ReLU, as airbench orders it: the
    norm then sees a quarter of the values, which trains lenet5_bn's 8-16 net 2.3x faster
    per image on a CPU (27,102 vs 11,781 images/s, same 3-epoch test accuracy 0.8964 vs
    0.8967; AMD EPYC, docs/SPEED.md)."""
    x = layers.Conv2D(
        filters, kernel_size, use_bias=not batch_norm, name=f"{name}_conv"
    )(x)
    if pool_first:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x if pool_first else layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def _dense(x, units, name, batch_norm=False, dropout=0.0):
    """dense -> (batch norm) -> ReLU -> (dropout)."""
    x = layers.Dense(units, use_bias=not batch_norm, name=f"{name}_dense")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def _classifier(x, num_classes):
    # Softmax even for binary problems (2 units): one loss, one export path, and
    # predict prints a probability per class name. float32 under mixed precision too:
    # a softmax in bfloat16/float16 loses the small probabilities the loss needs.
    return layers.Dense(num_classes, activation="softmax", name="predictions",
                        dtype="float32")(x)


# ---------------------------------------------------------------------------------------
# Builders: plain functions ending in keras.Model(inputs, outputs, name=...)
# ---------------------------------------------------------------------------------------


def lenet5(input_shape, num_classes):
    """Modern LeNet-5 (the keras-io form): ReLU instead of scaled tanh, max-pool instead
    of trainable subsampling, full C3 connections, softmax instead of RBF outputs."""
    inputs = keras.Input(input_shape, name="image")
    x = _pixels_in(inputs)
    x = _conv_pool(x, 6, "c1")
    x = _conv_pool(x, 16, "c3")
    x = layers.Flatten(name="flatten")(x)  # 16 x 5 x 5 = 400 for a 32x32 input
    x = _dense(x, 120, "f5")
    x = _dense(x, 84, "f6")
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5")


def lenet5_classic(input_shape, num_classes):
    """LeNet-5 as in LeCun, Bottou, Bengio & Haffner (1998), except for the output:
    a dense softmax classifier replaces the fixed Euclidean RBF units."""
    inputs = keras.Input(input_shape, name="image")
    # The paper maps background (white) to -0.1 and ink (black) to 1.175 so that the
    # inputs have mean ~0 and variance ~1. Fashion-MNIST/MNIST store ink as 255.
    x = _pixels_in(inputs, scale=1.275 / 255, offset=-0.1)
    x = layers.Conv2D(6, 5, activation=scaled_tanh, name="c1")(x)
    x = Subsampling(2, activation=scaled_tanh, name="s2")(x)
    x = PartialConv2D(C3_CONNECTIONS, 5, activation=scaled_tanh, name="c3")(x)
    x = Subsampling(2, activation=scaled_tanh, name="s4")(x)
    # C5 is a 5x5 convolution (not a dense layer): on a 32x32 input its maps are 1x1,
    # on larger inputs it still slides, as in the paper's space-displacement networks.
    x = layers.Conv2D(120, 5, activation=scaled_tanh, name="c5")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(84, activation=scaled_tanh, name="f6")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5_classic")


def lenet5_mini(input_shape, num_classes):
    """A ~3k-parameter LeNet for microcontrollers: 4 and 8 maps, no hidden dense layers."""
    inputs = keras.Input(input_shape, name="image")
    x = _pixels_in(inputs)
    x = _conv_pool(x, 4, "c1")
    x = _conv_pool(x, 8, "c3")
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5_mini")


# Measured on Fashion-MNIST, 15 epochs: 16/32 maps with dropout 0.3 overfit (train 0.96,
# test 0.916); 32/64 maps with dropout 0.4 reach 0.925.
def lenet5_bn(input_shape, num_classes, widths=(32, 64), dense_units=(128, 84), dropout=0.4,
              pool_first=False):
    """The accurate variant: LeNet-5 wider, with batch norm after every conv and dense
    layer and dropout before the classifier (``pool_first``: see ``_conv_pool``)."""
    inputs = keras.Input(input_shape, name="image")
    x = _pixels_in(inputs)
    # Two of each, unpacked: widths=[8, 16, 32] built two stages and dropped the 32 unsaid.
    (c1, c3), (f5, f6) = widths, dense_units
    x = _conv_pool(x, c1, "c1", batch_norm=True, pool_first=pool_first)
    x = _conv_pool(x, c3, "c3", batch_norm=True, pool_first=pool_first)
    x = layers.Flatten(name="flatten")(x)
    x = _dense(x, f5, "f5", batch_norm=True, dropout=dropout)
    x = _dense(x, f6, "f6", batch_norm=True, dropout=dropout)
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet5_bn")


def lenet1(input_shape, num_classes):
    """LeNet-1 (LeCun et al. 1989/1998): 4 and 12 maps of 5x5, average pooling, no
    hidden dense layer; on 28x28 inputs without padding, as in the paper."""
    inputs = keras.Input(input_shape, name="image")
    x = _pixels_in(inputs, pad_to=None)
    x = layers.Conv2D(4, 5, activation="tanh", name="c1")(x)
    x = layers.AveragePooling2D(2, name="s2")(x)
    x = layers.Conv2D(12, 5, activation="tanh", name="c3")(x)
    x = layers.AveragePooling2D(2, name="s4")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="lenet1")


def mlp(input_shape, num_classes, hidden=(300, 100)):
    """The fully connected baseline: the paper's 300-100 two-hidden-layer network."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden, start=1):
        x = _dense(x, units, f"h{i}")
    return keras.Model(inputs, _classifier(x, num_classes), name="mlp")


def alexnet_mini(input_shape, num_classes, widths=(16, 32, 48, 48, 32), dense_units=(256, 256),
                 dropout=0.5):
    """AlexNet's shape (Krizhevsky et al. 2012) scaled to 28-32 px: a 5x5 conv, then 3x3
    convs with max-pools after the 1st, 2nd and last (5th), two wide dense layers with dropout.

    As in AlexNet: ReLU, no batch norm (its local response normalisation is left out, as
    later work found it does little); 'same' padding so 28x28 inputs keep 3 pools.
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    for i, filters in enumerate(widths, start=1):  # a conv per width, however many
        kernel = 5 if i == 1 else 3
        x = layers.Conv2D(filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        if i in (1, 2, len(widths)):
            x = layers.MaxPooling2D(2, padding="same", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(dense_units, start=6):
        x = layers.Dense(units, activation="relu", name=f"fc{i}")(x)
        x = layers.Dropout(dropout, name=f"fc{i}_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name="alexnet_mini")


# MobileNet v1 (Howard et al. 2017) for 28-32 px: ImageNet's 224 px network downsamples 32x;
# here a stride-1 stem and two stride-2 blocks take 28x28 to 7x7. (filters, stride) per
# depthwise-separable block, before the width multiplier. Chosen on validation accuracy
# (15 epochs, real Fashion-MNIST; the candidates are tune.LAYOUTS now): a stride-2 stem
# (28 -> 14 -> 7 -> 4) peaked at 0.919, this stride-1 stem at 0.925 when the last block
# downsampled to 4x4 and 0.928 as here, ending at 7x7. Same parameters; the full-resolution
# stem makes training ~2x slower on a CPU.
MOBILENET_BLOCKS = ((64, 2), (128, 1), (128, 2), (128, 1), (256, 1))


def _relu6(x, name):
    # ReLU6 (max 6) keeps activations in a fixed range, so int8 scales stay fine-grained;
    # TFLite fuses it into the preceding conv.
    return layers.ReLU(6.0, name=name)(x)


# Batch norm's moving averages forget at 0.9 per step instead of Keras' 0.99: with 11
# stacked BN layers the slow average lagged the training statistics (depthwise outputs'
# variance shrinks ~10x in the first epoch), and the inference-mode model scored 10-14%
# (chance) on validation after 1-2 epochs while training accuracy was 0.87.
BN_MOMENTUM = 0.9


def _conv_bn_relu6(x, filters, kernel, strides, name):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return _relu6(x, f"{name}_relu6")


def _depthwise_separable(x, filters, strides, name):
    """3x3 depthwise conv -> BN -> ReLU6 -> 1x1 pointwise conv -> BN -> ReLU6."""
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
    x = _relu6(x, f"{name}_dw_relu6")
    return _conv_bn_relu6(x, filters, 1, 1, f"{name}_pw")


def _scaled(filters, width):
    # As in MobileNet: channels times the width multiplier, rounded to a multiple of 8
    # (whole SIMD vectors for XNNPACK's int8 kernels), never below 8.
    return max(8, int(filters * width + 4) // 8 * 8)


def mobilenet_mini(input_shape, num_classes, width=1.0, blocks=MOBILENET_BLOCKS, dropout=0.2,
                   stem_strides=1):
    """MobileNet v1 for small images: a 3x3 stem conv, depthwise-separable blocks with
    batch norm and ReLU6, global average pooling, dropout, softmax.

    ``width`` is MobileNet's width multiplier (alpha): every layer's channels times it.
    Every layer maps to a builtin int8 TFLite op (CONV_2D, DEPTHWISE_CONV_2D with fused
    ReLU6 and folded batch norm, MEAN, FULLY_CONNECTED, SOFTMAX).
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = _conv_bn_relu6(x, _scaled(32, width), 3, stem_strides, "stem")
    for i, (filters, strides) in enumerate(blocks, start=1):
        x = _depthwise_separable(x, _scaled(filters, width), strides, f"block{i}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    name = "mobilenet_mini" if width == 1.0 else f"mobilenet_mini_{int(round(width * 100)):03d}"
    return keras.Model(inputs, _classifier(x, num_classes), name=name)


# ---------------------------------------------------------------------------------------
# Building a registered model (names, arguments and sizes: registry.py)
# ---------------------------------------------------------------------------------------


def build_model(name, input_shape=(32, 32, 1), num_classes=10, **kwargs):
    """Build a registered model.

    Args:
        name: a registry name (see ``list_models()``).
        input_shape: (height, width, channels) of the raw images.
        num_classes: number of output classes (2 for a binary problem).
        **kwargs: builder arguments on top of the spec's (e.g. ``width=0.75`` for
            mobilenet_mini, ``widths=(16, 32)`` for lenet5_bn).

    Returns:
        An uncompiled ``keras.Model`` mapping raw 0-255 pixels to class probabilities.

    Raises:
        BadInput (a ValueError): unknown name or builder argument, an image too small for
        the model, or fewer than 2 classes.
    """
    input_shape, num_classes = _checked_arguments(name, input_shape, num_classes)
    spec = check_input(name, input_shape, num_classes)
    builder = globals()[builder_name(spec)]
    _check_builder_arguments(name, builder, spec.kwargs, kwargs)
    try:
        return builder(tuple(input_shape), num_classes, **{**spec.kwargs, **kwargs})
    except BadInput:
        raise
    except (IndexError, TypeError, ValueError) as error:
        if not kwargs:
            raise  # the registry's own arguments: a bug, not bad input
        given = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        raise BadInput(f"model {name} cannot be built with {given}: {error}") from None


def _check_builder_arguments(name, builder, spec_kwargs, kwargs):
    """BadInput (one line) for a builder argument the builder does not take, or one not of
    its default's kind (``_like_default``) or out of range (``_out_of_range``)."""
    parameters = dict(list(inspect.signature(builder).parameters.items())[2:])
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        takes = ", ".join(parameters) or "no arguments"
        raise BadInput(f"model {name} takes no argument {unknown[0]!r}; it takes: {takes}")
    defaults = {**{key: p.default for key, p in parameters.items()}, **spec_kwargs}
    for key, value in kwargs.items():
        wrong_kind = not _like_default(value, defaults[key])
        rule = _kind(defaults[key]) if wrong_kind else _out_of_range(key, value)
        if rule:
            raise BadInput(f"model {name}: {key} must be {rule}, got {value!r:.60}")


def _like_default(value, default):
    """Whether a builder argument has its default's kind: true/false for a switch
    (``pool_first="false"`` would be true), a whole number for a count, a number for a
    number, a list of such for a list (of any length: some builders loop over it)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if _whole(default):
        return _whole(value)
    if isinstance(default, (float, np.floating)):
        return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)) and default:
        return isinstance(value, (list, tuple)) and all(_like_default(v, default[0]) for v in value)
    return True  # None or text: the builder says what it takes


def _kind(default):
    if isinstance(default, bool):
        return "true or false"
    if _whole(default):
        return "a whole number"
    if isinstance(default, (float, np.floating)):
        return "a number"
    return f"a list like {json.dumps(default)}"


def _out_of_range(key, value):
    """What a builder argument of the right kind must be when it is out of range (None when
    in range): dropout in [0, 1), width (a multiplier) in (0, MAX_WIDTH], every count in
    1..MAX_UNITS, every list 1..MAX_LAYERS long. Checked after the kind, so a switch given
    0 hears "true or false", and before any weight exists."""
    if isinstance(value, (list, tuple)):
        if not 1 <= len(value) <= MAX_LAYERS:
            return f"a list of 1 to {MAX_LAYERS} values"
        return next(filter(None, (_out_of_range(key, v) for v in value)), None)
    if key == "dropout":
        return None if 0 <= value < 1 else "in [0, 1)"
    if key == "width":
        return None if 0 < value <= MAX_WIDTH else f"positive and at most {MAX_WIDTH:g}"
    if _whole(value) and not 1 <= value <= MAX_UNITS:
        return f"positive and at most {MAX_UNITS:,}"
    return None


def _whole(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _checked_arguments(name, input_shape, num_classes):
    """BadInput (one line) for arguments no builder can take: a shape that is not
    (H, W, C) of sizes 1..MAX_IMAGE_SIZE with 1 or 3 channels (10000x10000x3 tried to
    allocate 48 GB), a class count outside 2..MAX_CLASSES (builder arguments: _out_of_range)."""
    if not isinstance(name, str):
        raise BadInput(f"model name must be a registry name (text), got {name!r:.60}")
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3 or not all(_whole(d) for d in shape)
            or not all(1 <= d <= MAX_IMAGE_SIZE for d in shape[:2]) or shape[2] not in (1, 3)):
        raise BadInput(f"input_shape must be (height, width, channels) with sizes 1-{MAX_IMAGE_SIZE} "
                       f"and 1 or 3 channels, got {input_shape!r:.60}")
    if not _whole(num_classes) or not 2 <= num_classes <= MAX_CLASSES:
        raise BadInput(f"num_classes must be a whole number from 2 to {MAX_CLASSES:,}, "
                       f"got {num_classes!r:.60}")
    return tuple(int(d) for d in shape), int(num_classes)


def count_params(name, input_shape=(32, 32, 1), num_classes=10):
    """Parameter count of a registered model for the given input."""
    return build_model(name, input_shape, num_classes).count_params()
