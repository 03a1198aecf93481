"""The model registry: every named variant, its one-line description and the smallest
image it can see. Plain data, no Keras import, so names and sizes are checked in
milliseconds, before TensorFlow loads. The builders live in ``models.py``.

    >>> list_models("lenet5*")
    ['lenet5', 'lenet5_bn', 'lenet5_classic', 'lenet5_mini']
"""

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
    min_image_size: int = LENET_MIN_SIZE
    # TrainConfig defaults for this model (a recipe measured for it), under the options
    # the user gives; recorded in each run's config.json. Empty: the global defaults.
    train: dict = field(default_factory=dict)


MODELS = {
    spec.name: spec
    for spec in [
        ModelSpec("lenet5", "modern LeNet-5: ReLU, max-pool, 6-16-120-84"),
        ModelSpec("lenet5_classic",
                  "faithful 1998 LeNet-5: scaled tanh, trainable subsampling, Table I C3"),
        ModelSpec("lenet5_mini", "tiny 4-8 map LeNet for microcontrollers"),
        ModelSpec("lenet5_bn", "wider LeNet-5 with batch norm and dropout"),
        ModelSpec("lenet1", "LeNet-1 (1989): 4-12 maps, average pooling"),
        ModelSpec("mlp", "fully connected 300-100 baseline", min_image_size=1),
        ModelSpec("alexnet_mini",
                  "AlexNet shape for 28 px: 5 convs, 3 max-pools, 256-256 dense + dropout"),
        # Left-right flips (Fashion-MNIST's labels survive a mirror): on validation, 15
        # epochs, best 0.934 against 0.928 without (benchmarks/mobilenet_search.py).
        ModelSpec("mobilenet_mini",
                  "MobileNet v1: depthwise-separable blocks, BN + ReLU6, width 1.0",
                  train={"augment": "flip"}),
        ModelSpec("mobilenet_mini_050", "mobilenet_mini at width multiplier 0.5"),
    ]
}


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
