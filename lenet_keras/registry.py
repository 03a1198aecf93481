"""The model registry: one spec per named variant (its builder in ``models.py``, the
builder's keyword arguments, a one-line description, the smallest image it can see and
its training recipe). Plain data, no Keras import, so names and sizes are checked in
milliseconds, before TensorFlow loads. Adding a model: a builder in ``models.py`` (if
it needs one) and a spec here; ``tests/test_models.py`` builds every spec.

    >>> list_models("lenet5*")
    ['lenet5', 'lenet5_bn', 'lenet5_classic', 'lenet5_mini']
"""

import copy
import difflib
import fnmatch
from dataclasses import dataclass, field

from lenet_keras.errors import BadInput

# Below this a LeNet's two 5x5 conv + 2x2 pool stages have nothing left to see.
LENET_MIN_SIZE = 28


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    # The function in models.py that builds it ("" means the spec's name) and the keyword
    # arguments it is called with (a config's model_args go on top of them).
    builder: str = ""
    kwargs: dict = field(default_factory=dict)
    min_image_size: int = LENET_MIN_SIZE
    # TrainConfig defaults for this model (a recipe measured for it), under the options
    # the user gives; recorded in each run's config.json. Empty: the global defaults.
    train: dict = field(default_factory=dict)
    # Where mixed_bfloat16 trains this model faster than float32 at the same accuracy, as
    # measured (benchmarks/precision.py, docs/SPEED.md): {CPU bf16 kind: bf16 / float32
    # images/s over 15 epochs}, a kind from devices.BF16_KINDS. `fit --precision auto`
    # picks bf16 only where this has the CPU's kind. Measured on AMD Zen 4
    # (avx512_bf16) only: no Intel AMX entry until one is measured there.
    bf16_faster_on: dict = field(default_factory=dict)


MODELS = {
    spec.name: spec
    for spec in [
        ModelSpec("lenet5", "modern LeNet-5 (keras-io): ReLU, max-pool, 6-16 maps, 120-84 dense",
                  bf16_faster_on={"avx512_bf16": 1.16}),
        ModelSpec("lenet5_classic",
                  "faithful to LeCun et al. 1998: scaled tanh 1.7159·tanh(2x/3), trainable "
                  "subsampling (coefficient + bias per map), C3 wired by the paper's Table I "
                  "(1,516 params), C5 as a 5x5 conv; a softmax replaces the RBF output"),
        ModelSpec("lenet5_mini", "4-8 maps, no hidden dense layer: for microcontrollers",
                  bf16_faster_on={"avx512_bf16": 1.15}),
        ModelSpec("lenet5_bn", "32-64 maps, batch norm and dropout: the accurate one",
                  bf16_faster_on={"avx512_bf16": 1.14}),
        ModelSpec("lenet1", "LeNet-1 (1989): 4-12 maps, average pooling"),
        ModelSpec("mlp", "the fully connected 300-100 baseline", min_image_size=1),
        ModelSpec("alexnet_mini",
                  "AlexNet's shape for 28 px: 5x5 then four 3x3 convs (16-32-48-48-32 maps), "
                  "3 max-pools, 256-256 dense layers with dropout 0.5, ReLU, no batch norm",
                  bf16_faster_on={"avx512_bf16": 1.38}),
        # Left-right flips (Fashion-MNIST's labels survive a mirror): on validation, 15
        # epochs, best 0.934 against 0.928 without (the search that is now `lenet-keras tune`'s
        # space: tune.ARCHITECTURES, tune.LAYOUTS).
        ModelSpec("mobilenet_mini",
                  "MobileNet v1 for 28 px: 3x3 stem at full resolution, 5 depthwise-separable "
                  "blocks (64-128-128-128-256; 28 -> 14 -> 7), batch norm + ReLU6, global "
                  "average pool; trains with `--augment flip` by default",
                  train={"augment": "flip"}),
        ModelSpec("mobilenet_mini_050",
                  "`mobilenet_mini` at width multiplier 0.5 (`--model-arg width=0.75` for "
                  "others)", builder="mobilenet_mini", kwargs={"width": 0.5}),
    ]
}


# Named training recipes (`fit --recipe NAME`): the model they train (unless --model says
# otherwise) and the TrainConfig values they set over the model's registry recipe; options
# the user gives still win. Chosen on Fashion-MNIST's validation split only
# (benchmarks/fast_recipe_search.py); results in docs/SPEED.md.
RECIPES = {
    "fast": {
        # LeNet-5 with batch norm after each max-pool (lenet5_bn's builder, pool_first,
        # 8-16 maps, 128-84 dense, no dropout): batch norm lets a 1e-2 rate train, so 3
        # epochs reach what lenet5 needs 8-10 for; normalising after the pool (airbench's
        # order, a quarter of the values) brings its cost per image from 2.6x lenet5's
        # to ~1.3x on a CPU (docs/SPEED.md).
        # Batch 256, label smoothing 0.1, one cosine to zero over the 3 epochs, no stop (a
        # stop on the 6,000-image validation split fired early and optimistic: an older
        # recipe stopped at 0.9053 validation and scored 0.8967 on test). Chosen on
        # held-out training images only: the fewest epochs with every seed at or above
        # 0.912 (0.90 + the largest validation-to-test gap seen, 0.009, + one standard
        # error), then the fewest seconds (round 5 of docs/SPEED.md's search).
        "model": "lenet5_bn",
        "model_args": {"widths": [8, 16], "dropout": 0.0, "pool_first": True},
        "epochs": 3, "batch_size": 256, "learning_rate": 1e-2, "label_smoothing": 0.1,
    },
}


def get_recipe(name):
    """The named recipe's settings (a copy); an unknown name raises BadInput."""
    if name not in RECIPES:
        raise BadInput(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    return copy.deepcopy(RECIPES[name])  # model_args is a dict too: callers may change it


def list_models(pattern="*"):
    """Registered model names matching a glob pattern, e.g. ``list_models("lenet5*")``."""
    return sorted(name for name in MODELS if fnmatch.fnmatch(name, pattern))


def get_spec(name):
    """The registry entry for ``name``; an unknown name raises BadInput naming the
    closest match and the valid ones."""
    if name not in MODELS:
        close = difflib.get_close_matches(str(name), MODELS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise BadInput(f"unknown model '{name}'; {hint}choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def builder_name(spec):
    """The name of the function in models.py that builds ``spec``."""
    return spec.builder or spec.name


def check_input(name, input_shape, num_classes=None):
    """BadInput unless model ``name`` can take images of ``input_shape`` (H, W, C) and
    ``num_classes`` classes."""
    spec = get_spec(name)
    height, width = input_shape[:2]
    if min(height, width) < spec.min_image_size:
        raise BadInput(f"image size {height}x{width} is too small for {name}: it needs at "
                       f"least {spec.min_image_size}x{spec.min_image_size}")
    if num_classes is not None and num_classes < 2:
        raise BadInput(f"a classifier needs at least 2 classes, got {num_classes}")
    return spec
