"""The JAX training feed of another checkout against this one's, in one process, epochs
interleaved: what `fit --backend jax` gains or loses from where the batches are gathered
and augmented, without process start-up, validation or callbacks in the figures.

    KERAS_BACKEND=jax python benchmarks/jax_feed_ab.py --before ../old-checkout \
        --model lenet5 --data /usr/share/datasets/fashion-mnist \
        --variant before/none/64 --variant after/none/64 --variant after/flip/64

A variant is CHECKOUT/AUGMENT/STEPS_PER_EXECUTION: ``before`` feeds through the other
checkout's ``feed.ArrayBatches`` (there, main before this change: host gather, the
augmenter run eagerly per batch), ``after`` through this one's (batches gathered on the
device, the augmenter inside the model's jitted step). The model, optimizer and compile
settings are this checkout's ``build_for_config`` for both. Prints images/s per epoch
(training steps, the first, compiling epoch left out) and each variant's ratio to the
first, as the median of the rounds' pairs.
"""

import argparse
import importlib.util
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from lenet_keras.config import TrainConfig
from lenet_keras.devices import plain_float32
from lenet_keras.feed import ArrayBatches
from lenet_keras.pipelines import augmenter, prepare_arrays
from lenet_keras.quiet import import_keras
from lenet_keras.training import build_for_config


def other_feed(checkout):
    """The other checkout's feed.py as a module of its own."""
    spec = importlib.util.spec_from_file_location(
        "other_feed", Path(checkout) / "lenet_keras" / "feed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def variant(name, config, data, before, batch_size):
    """(compiled model, training batches) of one variant, its first epoch run."""
    keras = import_keras()
    tree, kind, steps = name.split("/")
    with plain_float32():  # as pipelines.build_batches builds it
        augment = augmenter(kind, data.image_shape[-1], config.seed)
    bundle = SimpleNamespace(image_shape=data.image_shape, class_names=data.class_names,
                             num_train=len(data.x_train),
                             augment=augment if tree == "after" else None)
    keras.utils.set_random_seed(config.seed)
    model = build_for_config(replace(config, steps_per_execution=int(steps)), bundle)
    if tree == "before":
        batches = before.ArrayBatches(data.x_train, data.y_train, batch_size, training=True,
                                      augment=augment)
    else:
        batches = ArrayBatches(data.x_train, data.y_train, batch_size, training=True,
                               on_device=True)
    model.fit(batches, epochs=1, verbose=0)  # compiles
    return model, batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the other checkout")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variant", action="append", required=True)
    args = parser.parse_args()
    config = TrainConfig(model=args.model, dataset=args.data, batch_size=args.batch_size,
                         augment="none", backend="jax").check().resolved()
    data = prepare_arrays(config)
    before = other_feed(args.before)
    variants = {name: variant(name, config, data, before, args.batch_size) for name in args.variant}
    rates = {name: [] for name in variants}
    for round_ in range(args.rounds):  # alternate the order: the same load for all
        for name in (args.variant if round_ % 2 == 0 else args.variant[::-1]):
            model, batches = variants[name]
            started = time.perf_counter()
            model.fit(batches, epochs=1, verbose=0)
            rates[name].append(len(batches) * args.batch_size / (time.perf_counter() - started))
    first = args.variant[0]
    for name, values in rates.items():
        ratio = np.median([a / b for a, b in zip(values, rates[first])])
        print(f"{name}: {np.median(values):,.0f} images/s (epochs: "
              f"{', '.join(f'{v:,.0f}' for v in values)}), {ratio:.2f}x {first}")


if __name__ == "__main__":
    main()
