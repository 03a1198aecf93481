"""Keras' per-step loop against one compiled ``lax.scan`` per execution on JAX
(``lenet_keras.fused_steps``), in one process, the package's own model and feed.

    KERAS_BACKEND=jax python benchmarks/jax_fused_ab.py --data .data/fashion_mnist.npz

Each variant: a fresh compiled model (``training.build_for_config``, the fit's own), one
warm-up epoch (compiles), then ``--epochs`` timed epochs; images/s of the timed epochs and
the ratio to Keras' loop. Variants run interleaved over ``--rounds``; medians printed.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

from lenet_keras import devices, fused_steps, training  # noqa: E402
from lenet_keras.config import TrainConfig  # noqa: E402
from lenet_keras.pipelines import build_batches, read_source  # noqa: E402
from lenet_keras.quiet import import_keras  # noqa: E402

VARIANTS = {"keras loop": None, "scan": 1, "scan, unroll 8": 8, "scan, unrolled": 64}


def images_per_second(config, unroll, epochs):
    devices.select_backend("jax")
    prepared = read_source(config)
    bundle = build_batches(config, prepared, devices.place(config))
    import_keras().utils.set_random_seed(config.seed)
    original = fused_steps.fuse_steps, fused_steps.fuses_here
    fused_steps.fuses_here = lambda: unroll is not None  # here: on a CPU too
    fused_steps.fuse_steps = lambda model: original[0](model, unroll=unroll)
    try:
        model = training.build_for_config(config, bundle)
    finally:
        fused_steps.fuse_steps, fused_steps.fuses_here = original
    model.fit(bundle.train, epochs=1, verbose=0)  # compiles
    started = time.perf_counter()
    model.fit(bundle.train, initial_epoch=1, epochs=1 + epochs, verbose=0)
    import jax

    jax.block_until_ready(model.trainable_variables[0].value)
    return bundle.train.num_images * epochs / (time.perf_counter() - started)


def at_least_one(text):
    """argparse type: a whole number >= 1 (--epochs 0 divided by zero after the run)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # None: the package's embedded sample, from any folder (a path relative to the
    # checkout failed when run from elsewhere)
    parser.add_argument("--data", default=None, help="default: the embedded sample")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--augment", default="none")
    parser.add_argument("--batch-size", type=at_least_one, default=128)
    parser.add_argument("--epochs", type=at_least_one, default=3)
    parser.add_argument("--rounds", type=at_least_one, default=1)
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    args = parser.parse_args()
    config = TrainConfig(model=args.model, dataset=args.data, backend="jax",
                         batch_size=args.batch_size, augment=args.augment,
                         precision="float32").check().resolved()
    variants = args.variant or list(VARIANTS)
    rates = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name in variants:
            rates[name].append(images_per_second(config, VARIANTS[name], args.epochs))
            print(f"{name}: {rates[name][-1]:,.0f} images/s", flush=True)
    import jax

    print(f"\n{args.model} --augment {args.augment}, batch {args.batch_size}, "
          f"{jax.devices()[0].device_kind}, medians of {args.rounds}:")
    base = statistics.median(rates[variants[0]])
    for name in variants:
        rate = statistics.median(rates[name])
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
