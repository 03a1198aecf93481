"""On the TensorFlow backend, augmenting in tf.data's parallel map (what `fit` does there)
against inside the model (``training.with_augmenter``, what JAX and torch do): lenet5,
batch 128, the real Fashion-MNIST, one process, epochs interleaved.

    python benchmarks/tf_augment_where.py [--rounds 4]

Prints images/s per variant (training steps; the first, compiling epoch left out) and
its ratio to no augmentation, the median of the rounds' pairs.
"""

import argparse
import time
from types import SimpleNamespace

import numpy as np

from lenet_keras.config import TrainConfig
from lenet_keras.devices import plain_float32
from lenet_keras.pipelines import array_pipeline, augmenter, prepare_arrays
from lenet_keras.quiet import import_keras
from lenet_keras.training import build_for_config

VARIANTS = [("none", "tf.data"), ("flip", "tf.data"), ("flip", "model"),
            ("shift", "tf.data"), ("shift", "model")]


def variant(config, data, kind, where):
    """(compiled model, training pipeline), its first epoch run."""
    keras = import_keras()
    with plain_float32():  # as pipelines.build_batches builds it
        augment = augmenter(kind, data.image_shape[-1], config.seed)
    bundle = SimpleNamespace(image_shape=data.image_shape, class_names=data.class_names,
                             num_train=len(data.x_train),
                             augment=augment if where == "model" else None)
    keras.utils.set_random_seed(config.seed)
    model = build_for_config(config, bundle)
    batches = array_pipeline(data.x_train, data.y_train, config.batch_size, True,
                             augment if where == "tf.data" else None, config.seed)
    model.fit(batches, epochs=1, verbose=0)  # compiles
    return model, batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    config = TrainConfig(model="lenet5", dataset=args.data, backend="tensorflow").check().resolved()
    data = prepare_arrays(config)
    steps = len(data.x_train) // config.batch_size
    built = {v: variant(config, data, *v) for v in VARIANTS}
    rates = {v: [] for v in VARIANTS}
    for round_ in range(args.rounds):  # alternate the order: the same load for all
        for v in (VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]):
            model, batches = built[v]
            started = time.perf_counter()
            model.fit(batches, epochs=1, verbose=0)
            rates[v].append(steps * config.batch_size / (time.perf_counter() - started))
    for (kind, where), values in rates.items():
        ratio = np.median([a / b for a, b in zip(values, rates[VARIANTS[0]])])
        print(f"{kind} in {where}: {np.median(values):,.0f} images/s, {ratio:.2f}x none")


if __name__ == "__main__":
    main()
