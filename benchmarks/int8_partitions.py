"""Why int8 LiteRT loses to float32 on some registry models: per model, the shipped
TFLite files (``export.tflite_bytes``: `export`'s own converter) in float32 and int8, how
many XNNPACK partitions each splits into, which ops XNNPACK leaves to LiteRT's reference
kernels, and the single-image latency (1 thread), with XNNPACK and without it.

    python benchmarks/int8_partitions.py > benchmarks/results/int8_partitions.txt
    python benchmarks/int8_partitions.py --models lenet5,lenet1
    python benchmarks/int8_partitions.py --before      # int8 pools as they were exported

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


def shipped_tflite(model, kind, images, workdir, before=False):
    """The .tflite bytes `export` writes for ``kind`` (float32 or int8: its own converter,
    ``export.tflite_bytes``), and its fold plan; ``before``: without the int8 rewrite of
    average pools as depthwise convolutions."""
    from lenet_keras.convert import convert_tflite, export_saved_model, fold_plan, tflite_graph
    from lenet_keras.export import tflite_bytes

    if not before or kind != "int8":
        content, extra = tflite_bytes(model, kind, images[:64], images[:200])
        return content, extra["folded_columns"]
    graph, used = tflite_graph(model, images[:64], fold_plan(model, kind))
    source = Path(tempfile.mkdtemp(dir=workdir))
    export_saved_model(graph, source, batch_size=1)

    def representative():
        for image in images[:200]:
            yield [image[None].astype(np.float32)]

    return convert_tflite(source, kind, representative), used


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
    parser.add_argument("--before", action="store_true",
                        help="int8 graphs as exported before average pools became depthwise "
                             "convolutions (convert.pools_as_depthwise)")
    args = parser.parse_args()
    from lenet_keras.quiet import import_keras

    import_keras()
    from lenet_keras.models import build_model
    from lenet_keras.registry import list_models
    from lenet_keras.sources import SAMPLE_PATH, load_npz

    images = load_npz(SAMPLE_PATH).x_train.astype(np.float32)
    names = args.models.split(",") if args.models else list_models()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores (may be shared); 1 interpreter thread"
          + ("; int8 graphs as before pools_as_depthwise" if args.before else ""), flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8_partitions-") as workdir:
        for name in names:
            model = build_model(name, images.shape[1:], 10)
            files = {kind: shipped_tflite(model, kind, images, workdir, args.before)
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
