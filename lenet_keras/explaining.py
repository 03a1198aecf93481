"""See what a network learned: first-layer filters, feature maps, and heat maps of which
pixels decided the class (Grad-CAM, saliency, occlusion), on every Keras backend.

    >>> import lenet_keras as lk
    >>> heat = lk.explain("runs/lenet5/model.keras", images, method="gradcam")  # [N, H, W]
    >>> maps = lk.feature_maps("runs/lenet5/model.keras", images[0])  # {stage: [h, w, c]}

Methods (``METHODS``):

- ``gradcam`` (Selvaraju et al. 2017): the last convolution stage's maps, weighted by the
  mean gradient of the class score over each map, ReLU; mapped back to the input through
  the strides, kernels and padding in front of that stage (not a plain stretch: a valid
  5x5 conv's 10x10 map covers the middle 20 pixels of a 32-pixel frame, not all 32).
- ``saliency`` (Simonyan et al. 2014): |d score / d pixel|, max over colour channels.
  Not SmoothGrad (Smilkov et al. 2017): averaging over noisy copies made the maps
  closer to a random model's (rank correlation 0.49-0.56 against 0.19, docs/EXPLAIN.md).
- ``occlusion`` (Zeiler & Fergus 2014): slide a background-coloured patch over the image;
  a pixel's heat is the mean drop in the class probability when it is hidden. Forward
  passes only, so it runs on any model file (.keras, .tflite, .onnx, SavedModel).

The class score is the logit (the softmax peeled off the last layer): the gradient of a
probability near 1 vanishes. Gradients go through ``gradient``, the one backend-specific
function here (TensorFlow tape, ``jax.grad``, torch autograd); everything else is
``keras.ops`` and numpy.

Honesty checks (``deletion_drops``, ``randomisation_correlations``; measured on 200 real
Fashion-MNIST test images by ``benchmarks/explain_checks.py``, figures in docs/EXPLAIN.md):
hiding the 10% of pixels a heat map ranks highest must lower the class probability more
than hiding 10% at random, and the heat maps of the trained model and of the same
architecture freshly initialised must have a mean Spearman rank correlation below 0.5
(Adebayo et al. 2018). A method that fails is not in ``OFFERED``.
"""

import math
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput

METHODS = ("gradcam", "saliency", "occlusion")
# Methods that need gradients, hence a Keras model (not a .tflite or .onnx file).
GRADIENT_METHODS = ("gradcam", "saliency")
# What passed both honesty checks on the lenet5 Fashion-MNIST run (docs/EXPLAIN.md).
OFFERED = METHODS
TITLES = {"gradcam": "Grad-CAM", "saliency": "saliency (gradient)", "occlusion": "occlusion"}
# Occlusion patch side and stride as fractions of the image side: 28 px -> 4 px patches
# every 2 px (169 forward passes per image).
OCCLUSION_PATCH = 1 / 7
OCCLUSION_STRIDE = 1 / 14
# The honesty checks: the fraction of pixels hidden, and the rank-correlation bar.
DELETE_FRACTION = 0.10
MAX_RANK_CORRELATION = 0.5
BATCH = 256


# ---------------------------------------------------------------------------------------
# The model's anatomy: stages, the Grad-CAM layer, the first filters, the class score
# ---------------------------------------------------------------------------------------


def _shape(tensor):
    return tuple(tensor.shape[1:])


def _has_kernel(layer):
    # A convolution (Conv2D, DepthwiseConv2D, the 1998 model's PartialConv2D): a weight
    # with spatial extent. Dense kernels are 2-D, batch norm's vectors 1-D.
    return any(len(w.shape) >= 3 for w in layer.weights)


def stages(model):
    """[(first layer, last layer)] of each convolution or pooling stage, in order.

    A stage starts at a layer with a convolution kernel or at one that shrinks the
    maps (pooling, the 1998 model's Subsampling) and takes in the shape-keeping layers
    after it (batch norm, activations), so its output is what the next stage sees.
    Found by shapes and weights, not class names, so custom layers count too.
    """
    found = []
    for layer in model.layers[1:]:
        try:
            before, after = _shape(layer.input), _shape(layer.output)
        except (AttributeError, ValueError, TypeError):  # several inputs or outputs
            continue
        if len(after) != 3 or len(before) != 3:
            continue
        if _has_kernel(layer) or after[0] * after[1] < before[0] * before[1]:
            found.append([layer, layer])
        elif found and after == before and found[-1][1].output is layer.input:
            found[-1][1] = layer
    return [tuple(stage) for stage in found]


def stage_name(stage):
    first, last = stage
    return first.name if first is last else f"{first.name} → {last.name}"


def check_explainable(model):
    """BadInput unless ``model`` is a Keras model with layers that takes images."""
    layers = [layer for layer in getattr(model, "layers", [])
              if type(layer).__name__ != "InputLayer"]
    if not layers:
        raise BadInput(f"model '{getattr(model, 'name', model)}' has no layers to explain")
    if len(model.inputs) != 1 or len(model.input_shape) != 4:
        raise BadInput(f"model '{model.name}' does not take one batch of images [N,H,W,C]; "
                       f"its input is {model.input_shape}")


def gradcam_stage(model):
    """The last convolution stage whose maps are larger than 1x1 (Grad-CAM's layer):
    lenet5's c3, lenet5_classic's c3 (its C5 maps are 1x1), mobilenet_mini's block5."""
    convolutions = [s for s in stages(model)
                    if _has_kernel(s[0]) and math.prod(_shape(s[1].output)[:2]) > 1]
    if not convolutions:
        raise BadInput(f"model '{model.name}' has no convolution layer, which Grad-CAM needs; "
                       "use --method saliency or occlusion")
    return convolutions[-1]


def first_filters(model):
    """(layer name, kernel [kh, kw, in, out]) of the first convolution."""
    for first, _ in stages(model):
        kernels = [w for w in first.get_weights() if w.ndim == 4]
        if kernels:
            return first.name, kernels[0]
    raise BadInput(f"model '{model.name}' has no convolution layer: no filters to show")


def _is_softmax(activation):
    import keras

    return activation is not None and keras.activations.serialize(activation) == "softmax"


def score_head(model, start=None):
    """A function from ``start`` (a tensor of the model's graph; default its input) to
    the class scores before the softmax: the last layer re-run without its softmax when
    it has one (Dense), the softmax layer's input when it is a layer of its own, else
    the model's output as it is."""
    import keras

    start = model.input if start is None else start
    last = model.layers[-1]
    if _is_softmax(getattr(last, "activation", None)) and hasattr(last, "kernel"):
        body = keras.Model(start, last.input)
        twin = type(last).from_config({**last.get_config(), "activation": "linear",
                                       "name": f"{last.name}_logits"})
        twin.build(last.input.shape)
        twin.set_weights(last.get_weights())
        return lambda x: twin(body(x, training=False))
    if type(last).__name__ == "Softmax" or _is_softmax(getattr(last, "activation", None)):
        body = keras.Model(start, last.input)
        return lambda x: body(x, training=False)
    body = keras.Model(start, model.output)
    return lambda x: body(x, training=False)


# ---------------------------------------------------------------------------------------
# The gradient shim: the one place that knows the backends
# ---------------------------------------------------------------------------------------


def gradient(function, x):
    """d sum(function(x)) / dx as a float32 numpy array, on the active Keras backend."""
    import keras

    x = np.asarray(x, np.float32)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        value = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(value)
            total = keras.ops.sum(function(value))
        return np.asarray(tape.gradient(total, value), np.float32)
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda v: keras.ops.sum(function(v)))(x), np.float32)
    if backend == "torch":
        import torch

        value = torch.tensor(x, requires_grad=True, device=keras.ops.convert_to_tensor(0.0).device)
        keras.ops.sum(function(value)).backward()
        return value.grad.detach().cpu().numpy().astype(np.float32)
    raise BadInput(f"gradients on the {backend} backend are not supported; "
                   "use tensorflow, jax or torch, or --method occlusion")


def _class_score(scores, classes):
    """A function x -> the score of each image's class (one-hot mask, keras.ops)."""
    from keras import ops

    def picked(x):
        values = scores(x)
        return values * ops.one_hot(ops.convert_to_tensor(classes), values.shape[-1])

    return picked


# ---------------------------------------------------------------------------------------
# Mapping a stage's cells back onto the input image
# ---------------------------------------------------------------------------------------


def cell_centres(cells_shape, size):
    """Per axis (stride, offset) placing cell i's centre at input pixel stride * i +
    offset, the cells spread evenly over the image: the plain stretch of keras-io's and
    pytorch-grad-cam's Grad-CAM. Measured against the exact receptive-field centres
    (strides, kernels, padding) on lenet5: the same deletion score (0.128 vs 0.129)."""
    return [(length / cells, (length / cells - 1) / 2) for cells, length in zip(cells_shape, size)]


def to_input_grid(cells, geometry, size):
    """Bilinear resampling of maps [N, h, w] at the input pixels' positions in cell units."""
    axes = []
    for axis, ((scale, offset), length) in enumerate(zip(geometry, size)):
        position = np.clip((np.arange(length) - offset) / scale, 0, cells.shape[1 + axis] - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, cells.shape[1 + axis] - 1)
        axes.append((low, high, (position - low).astype(np.float32)))
    (y0, y1, wy), (x0, x1, wx) = axes
    rows = cells[:, y0] * (1 - wy)[None, :, None] + cells[:, y1] * wy[None, :, None]
    return rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx


# ---------------------------------------------------------------------------------------
# The methods
# ---------------------------------------------------------------------------------------


def _normalise(maps):
    """Each map clipped at 0 and divided by its maximum (all-zero maps stay 0)."""
    maps = np.maximum(np.asarray(maps, np.float32), 0)
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.where(peak > 0, peak, 1)[:, None, None]


def gradcam(model, images, classes):
    """Grad-CAM heat maps [N, H, W] (0-1) for ``classes`` [N]."""
    import keras

    first, last = gradcam_stage(model)
    features = keras.Model(model.input, last.output)
    activations = np.asarray(keras.ops.convert_to_numpy(features(images, training=False)))
    grads = gradient(_class_score(score_head(model, last.output), classes), activations)
    weights = grads.mean(axis=(1, 2), keepdims=True)  # one weight per map
    cells = np.maximum((weights * activations).sum(axis=-1), 0)
    size = images.shape[1:3]
    return _normalise(to_input_grid(cells, cell_centres(cells.shape[1:], size), size))


def saliency(model, images, classes):
    """Saliency [N, H, W] (0-1): |d class score / d pixel|, max over colour channels."""
    grads = gradient(_class_score(score_head(model), classes), images)
    return _normalise(np.abs(grads).max(axis=-1))


def background_value(images):
    """Per image and channel, the median of its border pixels: what 'blank' means for
    it (0 for Fashion-MNIST's black background)."""
    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]],
                            axis=1)
    return np.median(border, axis=1)  # [N, C]


def _windows(length, patch, stride):
    starts = list(range(0, max(length - patch, 0) + 1, stride))
    if starts[-1] + patch < length:
        starts.append(length - patch)
    return starts


def occlusion(forward, images, classes):
    """Occlusion heat maps [N, H, W] (0-1): mean drop in the class probability when a
    background-coloured patch covers each pixel. ``forward``: images -> probabilities."""
    n, height, width = images.shape[:3]
    patch = max(2, round(height * OCCLUSION_PATCH))
    stride = max(1, round(height * OCCLUSION_STRIDE))
    spots = [(y, x) for y in _windows(height, patch, stride) for x in _windows(width, patch, stride)]
    background = background_value(images)
    heat = np.zeros((n, height, width), np.float32)
    cover = np.zeros((height, width), np.float32)
    for y, x in spots:
        cover[y:y + patch, x:x + patch] += 1
    base = forward(images)[np.arange(n), classes]
    for i in range(n):
        hidden = np.repeat(images[i:i + 1], len(spots), axis=0)
        for k, (y, x) in enumerate(spots):
            hidden[k, y:y + patch, x:x + patch] = background[i]
        drops = base[i] - forward(hidden)[:, classes[i]]
        for drop, (y, x) in zip(drops, spots):
            heat[i, y:y + patch, x:x + patch] += drop
    return _normalise(heat / cover)


# ---------------------------------------------------------------------------------------
# The API: lk.explain, lk.feature_maps
# ---------------------------------------------------------------------------------------


def _keras_forward(model):
    from keras import ops

    def forward(images):
        return np.concatenate([ops.convert_to_numpy(model(images[i:i + BATCH], training=False))
                               for i in range(0, len(images), BATCH)]).astype(np.float32)

    return forward


def load_explainable(model, safe_mode=True):
    """A keras.Model, a .keras path, or any predictor/model file (occlusion only) ->
    (keras model or None, forward function, input shape)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix == ".keras":
            from lenet_keras.runs import load_model

            model = load_model(path, safe_mode=safe_mode)
        else:
            from lenet_keras.predictors import load_predictor

            model = load_predictor(path, safe_mode=safe_mode)
    if hasattr(model, "layers") and hasattr(model, "inputs"):
        check_explainable(model)
        return model, _keras_forward(model), tuple(int(d) for d in model.input_shape[1:])
    if hasattr(model, "model") and hasattr(model.model, "layers"):  # a KerasPredictor
        return load_explainable(model.model)
    if hasattr(model, "predict") and hasattr(model, "input_shape"):
        shape = tuple(int(d) for d in model.input_shape)
        return None, lambda images: np.asarray(model.predict(images), np.float32), shape
    raise BadInput(f"cannot explain {type(model).__name__}: pass a Keras model, a .keras "
                   "file, or a model file that predict takes (occlusion only)")


def as_images(images, input_shape):
    """Image paths, one image [H,W,C] or a batch [N,H,W,C] -> float32 [N,H,W,C] raw
    pixels; BadInput for an image the model cannot take."""
    if isinstance(images, (str, Path)) or (isinstance(images, (list, tuple)) and images
                                          and isinstance(images[0], (str, Path))):
        from lenet_keras.predictors import read_image

        paths = [images] if isinstance(images, (str, Path)) else images
        return np.stack([read_image(path, input_shape) for path in paths])
    array = np.asarray(images, np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or tuple(array.shape[1:]) != tuple(input_shape) or not len(array):
        raise BadInput(f"images of shape {tuple(array.shape)} do not fit the model, which "
                       f"takes [N, {', '.join(map(str, input_shape))}] raw 0-255 pixels")
    if not np.isfinite(array).all():
        raise BadInput("the images hold NaN or infinite values")
    return array


def check_method(method, keras_model=True):
    """BadInput for an unknown method, one not offered, or a gradient method without a
    Keras model."""
    if method not in METHODS:
        raise BadInput(f"unknown method '{method}'; choose one of: {', '.join(METHODS)}")
    if method not in OFFERED:
        raise BadInput(f"method '{method}' failed the honesty checks (docs/EXPLAIN.md) and "
                       f"is not offered; choose one of: {', '.join(OFFERED)}")
    if method in GRADIENT_METHODS and not keras_model:
        raise BadInput(f"{method} needs gradients, hence a Keras model (.keras); this model "
                       "file allows --method occlusion")


def heatmaps(model, forward, images, method, classes):
    """Heat maps [N, H, W] of one method for known classes (no checks: see explain)."""
    if method == "occlusion":
        return occlusion(forward, images, classes)
    parts = [(gradcam if method == "gradcam" else saliency)(
        model, images[i:i + BATCH], classes[i:i + BATCH]) for i in range(0, len(images), BATCH)]
    return np.concatenate(parts)


def explain(model, images, method="gradcam", class_index=None, safe_mode=True):
    """Heat maps of which pixels decided the class.

    Args:
        model: a keras.Model, a .keras path, or (occlusion only) any model file or
            predictor that ``lk.predict`` takes.
        images: raw 0-255 pixels [N,H,W,C] or [H,W,C] at the model's input size, or
            image paths (read as ``predict`` reads them).
        method: one of ``OFFERED`` ('gradcam', 'saliency', 'occlusion').
        class_index: the class to explain: None (each image's predicted class), an int,
            or one int per image.

    Returns:
        float32 [N, H, W] at the input size, 0 (no evidence) to 1 (the most).

    Example:
        >>> heat = explain("runs/lenet5/model.keras", ["shirt.png"], method="occlusion")
    """
    keras_model, forward, input_shape = load_explainable(model, safe_mode)
    check_method(method, keras_model is not None)
    images = as_images(images, input_shape)
    classes = resolve_classes(class_index, forward(images))
    return heatmaps(keras_model, forward, images, method, classes)


def resolve_classes(class_index, probabilities):
    """[N] class indices: the predicted ones, or ``class_index`` checked against the outputs."""
    n, outputs = probabilities.shape
    if class_index is None:
        return probabilities.argmax(axis=1)
    classes = np.broadcast_to(np.asarray(class_index), (n,)).astype(np.int64)
    if ((classes < 0) | (classes >= outputs)).any():
        raise BadInput(f"class index {int(classes.max())} is out of range: the model has "
                       f"{outputs} classes (0-{outputs - 1})")
    return classes


def feature_maps(model, image, safe_mode=True):
    """The maps each convolution/pooling stage computes for one image.

    Args:
        model: a keras.Model or a .keras path.
        image: raw pixels [H,W,C] (or [1,H,W,C]) at the model's input size, or a path.

    Returns:
        {stage name ('c1_conv → c1_relu', 'c1_pool', ...): float32 [h, w, maps]}, in order.
    """
    import keras

    keras_model, _, input_shape = load_explainable(model, safe_mode)
    if keras_model is None:
        raise BadInput("feature maps need a Keras model (.keras)")
    image = as_images(image, input_shape)[:1]
    found = stages(keras_model)
    if not found:
        raise BadInput(f"model '{keras_model.name}' has no convolution or pooling layer: "
                       "no feature maps to show")
    probe = keras.Model(keras_model.input, [last.output for _, last in found])
    outputs = probe(image, training=False)
    return {stage_name(stage): np.asarray(keras.ops.convert_to_numpy(out))[0]
            for stage, out in zip(found, outputs)}


# ---------------------------------------------------------------------------------------
# Honesty checks
# ---------------------------------------------------------------------------------------


def _top_pixels(heat, count, rng):
    """Indices of the ``count`` highest pixels of a flat heat map, ties in random order
    (a Grad-CAM map has many zeros: a stable sort would hide the top-left corner)."""
    return np.lexsort((rng.random(heat.size), -heat.ravel()))[:count]


def deletion_drops(forward, images, maps, classes, fraction=DELETE_FRACTION, seed=0):
    """The drop in each image's class probability when the ``fraction`` of pixels a
    heat map ranks highest is set to the background, against the same number of pixels
    chosen at random, and chosen at random among those that are not background.

    Returns {'heatmap': [N], 'random': [N], 'random_ink': [N]} (probability drops).
    """
    rng = np.random.default_rng(seed)
    n, height, width, channels = images.shape
    count = max(1, round(fraction * height * width))
    background = background_value(images)
    chosen = {"heatmap": [], "random": [], "random_ink": []}
    for i in range(n):
        ink = np.flatnonzero(np.any(images[i] != background[i], axis=-1).ravel())
        if len(ink) < count:  # fewer ink pixels than asked: all of them plus random others
            rest = np.setdiff1d(np.arange(height * width), ink)
            ink = np.concatenate([ink, rng.choice(rest, count - len(ink), replace=False)])
        chosen["heatmap"].append(_top_pixels(maps[i], count, rng))
        chosen["random"].append(rng.choice(height * width, count, replace=False))
        chosen["random_ink"].append(rng.choice(ink, count, replace=False))
    base = forward(images)[np.arange(n), classes]
    drops = {}
    for name, pixels in chosen.items():
        blanked = images.copy().reshape(n, height * width, channels)
        for i, where in enumerate(pixels):
            blanked[i, where] = background[i]
        after = forward(blanked.reshape(images.shape))[np.arange(n), classes]
        drops[name] = base - after
    return drops


def rank_correlation(a, b):
    """Spearman's rank correlation of two maps (ties share their mean rank); 0 when one
    map is constant (it ranks nothing)."""
    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    try:
        from scipy.stats import spearmanr

        return float(spearmanr(a, b).statistic)
    except ImportError:  # numpy ranks with ties averaged
        def ranks(v):
            _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
            ends = np.cumsum(counts)
            return ((ends - (counts - 1) / 2.0) - 1)[inverse]

        return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def randomised_copy(model, seed=0):
    """The same architecture with freshly initialised weights (Adebayo et al.'s cascading
    randomisation taken to the end: every layer)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(model)


def randomisation_correlations(model, images, method, classes, seed=0):
    """Per image, the rank correlation of the trained model's heat map with that of the
    same architecture freshly initialised, for the same class. Also returns both maps."""
    fresh = randomised_copy(model, seed)
    trained_maps = heatmaps(model, _keras_forward(model), images, method, classes)
    random_maps = heatmaps(fresh, _keras_forward(fresh), images, method, classes)
    scores = np.array([rank_correlation(a, b) for a, b in zip(trained_maps, random_maps)])
    return scores, trained_maps, random_maps


# ---------------------------------------------------------------------------------------
# Figures (matplotlib's Agg canvas, as plots.py)
# ---------------------------------------------------------------------------------------

# Feature maps drawn per stage (the strongest: highest mean activation).
MAPS_PER_STAGE = 8
HEAT_ALPHA = 0.5


def _show_image(ax, image):
    image = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_filters(layer_name, kernel, out=None):
    """The first convolution's filters [kh, kw, in, out] as a grid: grey for one input
    channel (mid grey = 0, light = positive), colour for three; one tile per filter."""
    from lenet_keras.plots import _new_figure, save_figure

    height, width, channels, count = kernel.shape
    columns = min(8, count)
    rows = math.ceil(count / columns)
    figure = _new_figure((1.4 * columns + 0.6, 1.5 * rows + 1.0))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.axis("off")
            continue
        weights = kernel[..., i]
        scale = np.abs(weights).max() or 1.0
        if channels == 3:  # each filter on its own scale, 0 -> mid grey
            ax.imshow((weights / scale + 1) / 2)
        else:
            ax.imshow(weights.mean(axis=-1), cmap="gray", vmin=-scale, vmax=scale)
        ax.set_title(f"filter {i}", fontsize=8)
    kind = "RGB" if channels == 3 else "grey: light = positive, dark = negative weight"
    figure.suptitle(f"First convolution '{layer_name}': {count} filters of "
                    f"{height}×{width}×{channels} ({kind})")
    if out is not None:
        save_figure(figure, out)
    return figure


def plot_feature_maps(image, maps, out=None, title="Feature maps"):
    """The input and, one row per stage, its strongest maps, each row titled with the
    stage's layer names and output shape (h×w×maps)."""
    from lenet_keras.plots import _new_figure, save_figure

    stages_shown = [(name, m) for name, m in maps.items() if m.shape[0] * m.shape[1] > 1]
    figure = _new_figure((1.5 * (MAPS_PER_STAGE + 1) + 0.5, 1.9 * (len(stages_shown) + 1) + 0.6))
    panels = figure.subfigures(len(stages_shown) + 1, 1)
    top = panels[0].subplots(1, MAPS_PER_STAGE + 1)
    _show_image(top[0], image)
    top[0].set_title("input", fontsize=9)
    for ax in top[1:]:
        ax.axis("off")
    for panel, (name, stage_maps) in zip(panels[1:], stages_shown):
        h, w, count = stage_maps.shape
        order = np.argsort(-stage_maps.mean(axis=(0, 1)), kind="stable")[:MAPS_PER_STAGE]
        shown = f"{len(order)} strongest of {count}" if count > len(order) else f"all {count}"
        panel.suptitle(f"{name}: {h}×{w}×{count} ({shown} maps; bright = strong)", fontsize=10)
        axes = panel.subplots(1, MAPS_PER_STAGE + 1)
        axes[0].axis("off")
        for ax, index in zip(axes[1:], list(order) + [None] * MAPS_PER_STAGE):
            ax.set_xticks([])
            ax.set_yticks([])
            if index is None:
                ax.axis("off")
                continue
            ax.imshow(stage_maps[..., index], cmap="viridis")
            ax.set_title(f"map {index}", fontsize=8)
    figure.suptitle(title)
    if out is not None:
        save_figure(figure, out)
    return figure


def _overlay(ax, image, heat):
    _show_image(ax, image)
    return ax.imshow(heat, cmap="jet", alpha=HEAT_ALPHA, vmin=0, vmax=1)


def plot_heatmap(image, heat, out=None, title="Heat map"):
    """The image beside the image with its heat map over it (colour bar: evidence for the
    class, 0 to 1)."""
    from lenet_keras.plots import _new_figure, save_figure

    figure = _new_figure((8.0, 4.4))
    left, right = figure.subplots(1, 2)
    _show_image(left, image)
    left.set_title("image as the model sees it", fontsize=9)
    drawn = _overlay(right, image, heat)
    right.set_title("heat map (red: most evidence)", fontsize=9)
    figure.colorbar(drawn, ax=right, label="evidence for the class (0-1)", shrink=0.8)
    figure.suptitle(title)
    if out is not None:
        save_figure(figure, out)
    return figure


def plot_explained(images, maps, true, predicted, probabilities, class_names, out=None,
                   title="Heat maps", columns=8):
    """A grid of test images with their heat maps, titled with predicted class (and
    probability) and true class; mistakes in red with a red frame."""
    from lenet_keras.plots import _new_figure, save_figure

    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    figure = _new_figure((max(6.0, 2.0 * columns), 2.5 * rows + 0.8))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for ax, image, heat, t, p, prob in zip(axes, images, maps, true, predicted, probabilities):
        _overlay(ax, image, heat)
        color = "red" if t != p else "darkgreen"
        ax.set_title(f"pred: {class_names[p]} {prob:.2f}\ntrue: {class_names[t]}",
                     color=color, fontsize=8)
        for spine in ax.spines.values():
            spine.set(color=color, linewidth=3 if t != p else 1)
    for ax in axes[len(images):]:
        ax.axis("off")
    wrong = int(np.sum(np.asarray(true) != np.asarray(predicted)))
    figure.suptitle(f"{title}: {wrong} of {len(images)} wrong (red, shown first)")
    if out is not None:
        save_figure(figure, out)
    return figure


# ---------------------------------------------------------------------------------------
# `lenet-keras explain`: image files -> PNG files
# ---------------------------------------------------------------------------------------


def parse_methods(method, keras_model):
    """'all' (the offered methods this model allows) or one method name -> a tuple."""
    if method in (None, "all"):
        try:
            gradcam_stage(keras_model)
            return OFFERED
        except BadInput:  # no convolution (mlp): the methods that need none
            return tuple(m for m in OFFERED if m != "gradcam")
    check_method(method)
    if method == "gradcam":
        gradcam_stage(keras_model)  # BadInput now, before any work
    return (method,)


def class_of(name, labels):
    """The index of class ``name`` (BadInput naming the classes when unknown)."""
    if name in labels:
        return labels.index(name)
    shown = ", ".join(labels[:12]) + (" ..." if len(labels) > 12 else "")
    raise BadInput(f"unknown class '{name}'; the model's classes: {shown}")


def _output_names(paths):
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{i}_{stem}" for i, stem in enumerate(stems)]


def explain_files(paths, model_path, method="all", class_name=None, out_dir=None,
                  safe_mode=True):
    """Write, for image files, the PNGs a person reads: ``filters.png`` (the first
    convolution), ``<image>_feature_maps.png`` and ``<image>_<method>.png`` per method.

    Everything is read and checked (model, methods, class, images) and computed before
    the first file is written, so bad input leaves nothing behind. Returns the paths.
    """
    from lenet_keras.predictors import find_labels

    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise BadInput(f"explain needs a Keras model (.keras) for its layers and gradients, "
                       f"got '{model_path}'")
    out_dir = Path(out_dir or model_path.parent / "explain")
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"--out '{out_dir}' is a file; name a folder")
    model, forward, input_shape = load_explainable(model_path, safe_mode)
    methods = parse_methods(method, model)
    outputs = int(model.output_shape[-1])
    labels = find_labels(model_path) or [f"class_{i}" for i in range(outputs)]
    forced = None if class_name is None else class_of(class_name, labels)
    images = as_images(list(paths), input_shape)
    probabilities = forward(images)
    classes = resolve_classes(forced, probabilities)
    maps = {m: heatmaps(model, forward, images, m, classes) for m in methods}
    has_stages = bool(stages(model))
    filters = first_filters(model) if any(_has_kernel(f) for f, _ in stages(model)) else None
    features = [feature_maps(model, image) for image in images] if has_stages else []
    return _write_explained(paths, images, labels, classes, probabilities, maps, filters,
                            features, out_dir)


def _write_explained(paths, images, labels, classes, probabilities, maps, filters, features,
                     out_dir):
    written = []
    if filters is not None:
        written.append(out_dir / "filters.png")
        plot_filters(*filters, out=written[-1])
    for i, (path, name) in enumerate(zip(paths, _output_names(paths))):
        label, p = labels[classes[i]], float(probabilities[i, classes[i]])
        predicted = labels[int(probabilities[i].argmax())]
        if features:
            written.append(out_dir / f"{name}_feature_maps.png")
            plot_feature_maps(images[i], features[i], written[-1],
                              title=f"{Path(path).name}: feature maps (predicted {predicted})")
        for method, heat in maps.items():
            written.append(out_dir / f"{name}_{method}.png")
            plot_heatmap(images[i], heat[i], written[-1],
                         title=f"{Path(path).name}: {TITLES[method]} for class '{label}' "
                               f"(p = {p:.2f})")
    return written
