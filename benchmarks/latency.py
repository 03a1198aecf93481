"""Single-image latency: Keras vs LiteRT float32 vs LiteRT int8, before and after the
export's graph changes.

For one trained run it converts the model four ways and times one image at a time
(LiteRT interpreter, 1 thread, XNNPACK as LiteRT applies it by default):

    plain     the serving SavedModel as is (dynamic batch), the usual tutorial conversion
    static    + a static batch of 1 (no run-time shape ops, one XNNPACK partition)
    stem      + the first convolution's columns folded into channels (pairs for
                float32, 7 columns for int8)
    shipped   what `cli.py export` writes, made by its own converter
                (``export.tflite_bytes``): every few-channel convolution folded
                (``convert.fold_plan``; int8 also folds C3's column pairs), int8 average
                pools as depthwise convolutions, metadata

and calls the Keras model on one image (``model(x, training=False)``, eager). All TFLite
variants take turns round by round and each keeps its fastest round (a shared CPU slows
them alike), then the script prints the ratios the export promises:

    keras / float32 (shipped)   >= 10   float32 TFLite vs calling the Keras model
    int8 / float32 (shipped)    <= 1    int8 no slower than float32

    python cli.py fit --dataset /usr/share/datasets/fashion-mnist --epochs 5 --run-dir /tmp/fm_lenet5
    python benchmarks/latency.py --run-dir /tmp/fm_lenet5          # ~1 minute on 2 cores

``--per-layer`` shows where the shipped graphs spend their time instead. LiteRT's Python
interpreter has no op profiler, so it converts every prefix of the graph (input up to
layer k, int8 recalibrated) and times them all, interleaved; the difference between
consecutive prefixes is roughly the cost of the layers in between (about +-1 us of noise).
"""

import argparse
import itertools
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402


def build_variants(model, calibration, images, workdir):
    """{(variant, kind): tflite bytes} for the plain, static, stem and shipped graphs."""
    from lenet_keras.convert import (
        convert_tflite, export_saved_model, space_to_depth_stem, stem_factor)
    from lenet_keras.export import tflite_bytes

    def representative():
        for image in calibration:
            yield [image[None]]

    files = {}
    for variant in ("plain", "static", "stem", "shipped"):
        for kind in ("float32", "int8"):
            if variant == "shipped":  # export's own converter: what ships
                files[variant, kind] = tflite_bytes(model, kind, images[:256], calibration)[0]
                continue
            graph = space_to_depth_stem(model, stem_factor(model, kind)) if variant == "stem" else model
            source = Path(workdir) / f"{variant}-{kind}"
            export_saved_model(graph, source, batch_size=None if variant == "plain" else 1)
            files[variant, kind] = convert_tflite(
                source, kind, representative if kind == "int8" else None)
    return files


def single_image_call(runner, images):
    """A no-argument call running the next test image (already in the file's dtype)."""
    prepared = itertools.cycle([runner.prepare(images[i: i + 1]) for i in range(len(images))])
    return lambda: runner.invoke(next(prepared))


def layer_prefixes(graph):
    """[(layer name, model from the input up to and including that layer)] for a chain."""
    import keras

    inputs = keras.Input(graph.input_shape[1:], name="image")
    x, prefixes = inputs, []
    for layer in graph.layers[1:]:
        x = layer(x)
        if not isinstance(layer, keras.layers.Dropout):  # identity at inference
            prefixes.append((layer.name, keras.Model(inputs, x)))
    return prefixes


def per_layer(model, calibration, images, rounds, number, variant="shipped"):
    """Print the cumulative and per-layer single-image latency of the shipped graphs (or
    of the ``stem`` variant: only the first convolution folded)."""
    from lenet_keras.convert import (
        convert_tflite, export_saved_model, shipped_graph, space_to_depth_stem, stem_factor)
    from lenet_keras.export import measure_latencies_us
    from lenet_keras.runtimes import TFLiteModel

    def representative():
        for image in calibration:
            yield [image[None]]

    calls = {}
    with tempfile.TemporaryDirectory() as workdir:
        for kind in ("float32", "int8"):
            graph = (shipped_graph(model, kind, images[:256])[0] if variant == "shipped"
                     else space_to_depth_stem(model, stem_factor(model, kind)))
            for index, (name, prefix) in enumerate(layer_prefixes(graph)):
                source = Path(workdir) / f"{kind}-{index}"
                export_saved_model(prefix, source, batch_size=1)
                runner = TFLiteModel(convert_tflite(
                    source, kind, representative if kind == "int8" else None))
                calls[kind, name] = single_image_call(runner, images[:64])
    latency = measure_latencies_us(calls, rounds=rounds, number=number)
    print(f"{'kind':<9}{'up to layer':<22}{'cumulative us':>14}{'layer us':>10}")
    previous = {}
    for (kind, name), us in latency.items():
        print(f"{kind:<9}{name:<22}{us:>14.1f}{us - previous.get(kind, 0.0):>+10.1f}")
        previous[kind] = us


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default=None, help="a trained run (default: the latest)")
    parser.add_argument("--rounds", type=int, default=30, help="timing rounds per variant")
    parser.add_argument("--number", type=int, default=300, help="single-image calls per round")
    parser.add_argument("--calibration-samples", type=int, default=300)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--per-layer", nargs="?", const="shipped", choices=("stem", "shipped"),
                        help="time every prefix of the shipped (or stem-only) graphs instead: "
                             "where the time goes")
    args = parser.parse_args(argv)

    from lenet_keras.export import dataset_arrays, measure_latencies_us
    from lenet_keras.runtimes import TFLiteModel
    from lenet_keras.runs import load_config, load_model, resolve_run_dir
    from lenet_keras.pipelines import evaluation_batches

    run_dir = resolve_run_dir(args.run_dir)
    model = load_model(run_dir / "model.keras")
    bundle = evaluation_batches(load_config(run_dir))
    images, labels = dataset_arrays(bundle.test, 1000)
    calibration, _ = dataset_arrays(bundle.train, args.calibration_samples)
    if args.per_layer:
        print(f"{run_dir} ({load_config(run_dir).model}, {bundle.name}), {args.per_layer} "
              f"graphs; LiteRT 1 thread, fastest of {args.rounds} rounds x {args.number} "
              "single-image calls")
        return per_layer(model, calibration, images, args.rounds, args.number, args.per_layer)

    with tempfile.TemporaryDirectory() as workdir:
        files = build_variants(model, calibration, images, workdir)
    runners = {key: TFLiteModel(content) for key, content in files.items()}

    calls = {key: single_image_call(runner, images[:64]) for key, runner in runners.items()}
    tflite_us = measure_latencies_us(calls, rounds=args.rounds, number=args.number)
    one = images[:1]
    keras_us = measure_latencies_us({"keras": lambda: model(one, training=False)},
                                    rounds=5, number=max(1, args.number // 10))["keras"]

    reference = model.predict(images, verbose=0).argmax(1)
    print(f"{run_dir} ({load_config(run_dir).model}, {bundle.name}); LiteRT 1 thread, "
          f"fastest of {args.rounds} rounds x {args.number} single-image calls")
    print(f"{'variant':<10}{'kind':<9}{'bytes':>9}{'latency us':>12}{'accuracy':>10}{'agree':>8}")
    print(f"{'keras':<10}{'float32':<9}{'':>9}{keras_us:>12.1f}"
          f"{np.mean(reference == labels):>10.4f}{1:>8.3f}")
    results = {"run_dir": str(run_dir), "keras_call_us": keras_us, "tflite": {}}
    for (variant, kind), runner in runners.items():
        predicted = runner.predict(images).argmax(1)
        accuracy, agreement = np.mean(predicted == labels), np.mean(predicted == reference)
        latency = tflite_us[variant, kind]
        print(f"{variant:<10}{kind:<9}{len(files[variant, kind]):>9,}{latency:>12.1f}"
              f"{accuracy:>10.4f}{agreement:>8.3f}")
        results["tflite"][f"{variant}/{kind}"] = {
            "latency_us": latency, "bytes": len(files[variant, kind]),
            "accuracy": float(accuracy), "agreement": float(agreement)}

    ratios = {
        "keras / float32 (shipped)": keras_us / tflite_us["shipped", "float32"],
        "int8 / float32 (plain)": tflite_us["plain", "int8"] / tflite_us["plain", "float32"],
        "int8 / float32 (static)": tflite_us["static", "int8"] / tflite_us["static", "float32"],
        "int8 / float32 (stem)": tflite_us["stem", "int8"] / tflite_us["stem", "float32"],
        "int8 / float32 (shipped)": tflite_us["shipped", "int8"] / tflite_us["shipped", "float32"],
        "int8 plain / int8 shipped": tflite_us["plain", "int8"] / tflite_us["shipped", "int8"],
        "float32 plain / float32 shipped": (tflite_us["plain", "float32"]
                                            / tflite_us["shipped", "float32"]),
    }
    print("ratios:")
    for name, value in ratios.items():
        print(f"  {name:<34}{value:7.2f}x")
    results["ratios"] = ratios
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
