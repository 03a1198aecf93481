"""Why int8 LiteRT loses to float32 on some registry models: per model, the shipped
TFLite graphs (``convert.fold_plan`` + ``tflite_graph`` + ``convert_tflite``, as `export`
writes them) in float32 and int8, how many XNNPACK partitions each splits into, which ops
XNNPACK leaves to LiteRT's reference kernels, and the single-image latency (1 thread),
with XNNPACK and without it.

    python benchmarks/int8_partitions.py > benchmarks/results/int8_partitions.txt
    python benchmarks/int8_partitions.py --models lenet5,lenet1

Weights are the builders' random initialisation (latency does not depend on their
values; the graph does), calibrated on the embedded Fashion-MNIST sample. Timings take
turns round by round and keep each file's fastest round, so a shared CPU slows all alike;
the CPU is named in the output.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def shipped_tflite(model, kind, images, workdir, rewrite=None):
    """The .tflite bytes `export` writes for ``kind`` (float32 or int8), and its fold plan;
    ``rewrite`` (the experiment) is applied to the graph after the column folding."""
    from lenet_keras.convert import convert_tflite, export_saved_model, fold_plan, tflite_graph

    graph, used = tflite_graph(model, images[:64], fold_plan(model, kind))
    if rewrite is not None:
        graph = rewrite(graph)
    source = Path(tempfile.mkdtemp(dir=workdir))
    export_saved_model(graph, source, batch_size=1)

    def representative():
        for image in images[:200]:
            yield [image[None].astype(np.float32)]

    return convert_tflite(source, kind, representative if kind == "int8" else None), used


def pools_as_depthwise(model):
    """The experiment of ``--pools-as-depthwise``: the same network with every average pool
    (and lenet5_classic's Subsampling: average x coefficient + bias, then its activation)
    as a fixed depthwise convolution of the pool's size and stride, weights
    coefficient / area: the same function in float, and an op XNNPACK takes in int8.
    None when the model has no average pool (only linear chains are rewritten)."""
    import keras

    from lenet_keras.models import Subsampling

    pools = (keras.layers.AveragePooling2D, Subsampling)
    if not any(isinstance(layer, pools) for layer in model.layers):
        return None
    x = inputs = keras.Input(model.input_shape[1:], name="image")
    for layer in model.layers[1:]:
        if not isinstance(layer, pools):
            x = layer(x)
            continue
        size = layer.pool_size if isinstance(layer.pool_size, int) else layer.pool_size[0]
        channels = x.shape[-1]
        subsampling = isinstance(layer, Subsampling)
        coefficient = (keras.ops.convert_to_numpy(layer.coefficient) if subsampling
                       else np.ones(channels, np.float32))
        conv = keras.layers.DepthwiseConv2D(size, strides=size, use_bias=subsampling,
                                            activation=layer.activation if subsampling else None,
                                            name=f"{layer.name}_as_depthwise")
        x = conv(x)
        kernel = np.broadcast_to(coefficient / size**2, (size, size, channels)).reshape(
            size, size, channels, 1)
        conv.set_weights([kernel.astype(np.float32)]
                         + ([keras.ops.convert_to_numpy(layer.bias)] if subsampling else []))
    return keras.Model(inputs, x, name=f"{model.name}_pools_as_depthwise")


def interpreter(content, xnnpack):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.AUTO if xnnpack
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it = Interpreter(model_content=content, num_threads=1,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def partitions(it):
    """(XNNPACK partitions, ops left outside them) from the interpreter's node list: a
    DELEGATE node per partition; an op is outside when a partition (or the graph's output)
    consumes its result but no partition produces it."""
    ops = it._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    made = {t for d in delegates for t in d["outputs"]}
    wanted = {t for d in delegates for t in d["inputs"]} | {
        d["index"] for d in it.get_output_details()}
    outside = [op["op_name"] for op in ops if op["op_name"] != "DELEGATE"
               and not set(op["outputs"]) & made and set(op["outputs"]) & wanted]
    return len(delegates), outside


def best_microseconds(interpreters, rounds=7, calls=300):
    """{name: fastest round's mean microseconds per invoke}, the files taking turns."""
    best = {name: float("inf") for name in interpreters}
    for _ in range(rounds):
        for name, it in interpreters.items():
            detail = it.get_input_details()[0]
            it.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
            it.invoke()
            started = time.perf_counter()
            for _ in range(calls):
                it.invoke()
            best[name] = min(best[name], (time.perf_counter() - started) / calls * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help="comma-separated (default: all)")
    parser.add_argument("--pools-as-depthwise", action="store_true",
                        help="also time each model with average pools as depthwise convs")
    args = parser.parse_args()
    from lenet_keras.quiet import import_keras

    import_keras()
    from lenet_keras.models import build_model
    from lenet_keras.registry import list_models
    from lenet_keras.sources import SAMPLE_PATH, load_npz

    images = load_npz(SAMPLE_PATH).x_train.astype(np.float32)
    names = args.models.split(",") if args.models else list_models()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores (may be shared); 1 interpreter thread",
          flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8_partitions-") as workdir:
        models = [(name, build_model(name, images.shape[1:], 10), None) for name in names]
        if args.pools_as_depthwise:
            for name, model, _ in list(models):
                variant = pools_as_depthwise(model)
                if variant is not None:
                    gap = np.max(np.abs(model.predict(images[:256], verbose=0)
                                        - variant.predict(images[:256], verbose=0)))
                    print(f"{name}: pools as depthwise, float difference {gap:.1e}")
                    models.append((f"{name}, pools as depthwise", variant, None))
                    # The same after the shipped column folding (the folded chain's pools).
                    models.append((f"{name}, folded, then pools as depthwise", model,
                                   pools_as_depthwise))
        for name, model, rewrite in models:
            files = {kind: shipped_tflite(model, kind, images, workdir, rewrite)
                     for kind in ("float32", "int8")}
            its = {f"{kind}{'' if x else ' ref'}": interpreter(files[kind][0], x)
                   for kind in files for x in (True, False)}
            times = best_microseconds(its)
            split = {kind: partitions(its[kind]) for kind in files}
            rows.append((name, files, split, times))
            print(name, {k: round(v, 1) for k, v in times.items()}, split,
                  {k: v[1] for k, v in files.items()}, flush=True)
    print("\n| model | float32 us | int8 us | int8/float32 | int8 without XNNPACK us "
          "| XNNPACK partitions f32 / int8 | int8 ops outside XNNPACK |")
    print("|---|---:|---:|---:|---:|---|---|")
    for name, files, split, times in rows:
        outside = ", ".join(sorted(set(split["int8"][1]))) or "none"
        print(f"| {name} | {times['float32']:.1f} | {times['int8']:.1f} | "
              f"{times['int8'] / times['float32']:.2f}x | {times['int8 ref']:.1f} | "
              f"{split['float32'][0]} / {split['int8'][0]} | {outside} |")


if __name__ == "__main__":
    main()
