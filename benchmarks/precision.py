"""mixed_bfloat16 against float32 on this machine's CPU: images/s and final accuracy.

The package's own training path (``load_batches`` + ``build_for_config`` after
``devices.place``, as ``fit --precision ...`` runs it), TensorFlow backend, one worker
process per precision; the two alternate epoch by epoch so a CPU shared with other jobs
slows both alike. images/s: median over epochs of training steps only (the first,
compiling execution left out); ratio: median of back-to-back epoch pairs. Accuracy: the
test accuracy of each model after the last epoch.

    python benchmarks/precision.py                         # lenet5 and lenet5_bn, 15 epochs
    python benchmarks/precision.py --models lenet5 --epochs 3
"""

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import DEFAULT_DATA, Worker, load_average, paired_ratio, per_epoch_rate  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")


def compare(model, args):
    workers = [Worker(p, "package", {"dataset": args.data, "model": model, "epochs": args.epochs,
                                     "batch_size": args.batch_size, "precision": p})
               for p in PRECISIONS]
    for epoch in range(1, args.epochs + 1):
        for worker in workers:
            row = worker.call("epoch")
            worker.epochs.append(row)
            print(f"  {model} epoch {epoch:2d} {worker.name:>15}: {per_epoch_rate(row):8.0f} img/s",
                  flush=True)
    rows = []
    for worker in workers:
        accuracy = worker.call("evaluate")["test_accuracy"]
        rates = [per_epoch_rate(r) for r in worker.epochs[1:] if r["images"]]
        rows.append((worker.name, statistics.median(rates), accuracy))
        worker.close()
    ratio = paired_ratio(workers[1], workers[0]) if args.epochs > 1 else float("nan")
    return rows, ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--models", nargs="+", default=["lenet5", "lenet5_bn"])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    extensions = [f for f in ("amx_bf16", "avx512_bf16") if f in flags.split()]
    print(f"CPU: {cpu} ({', '.join(extensions) or 'no bf16 instructions'}); "
          f"load average before: {load_average():.1f}", flush=True)
    results = {model: compare(model, args) for model in args.models}
    print(f"\nload average after: {load_average():.1f}\n")
    print(f"| model ({args.epochs} epochs, batch {args.batch_size}) | precision | images/s "
          "| bf16 / float32 (paired) | test accuracy |")
    print("|---|---|---:|---:|---:|")
    for model, (rows, ratio) in results.items():
        for name, rate, accuracy in rows:
            shown = f"**{ratio:.2f}x**" if name != "float32" else ""
            print(f"| {model} | {name} | {rate:,.0f} | {shown} | {accuracy:.4f} |")
        delta = (rows[1][2] - rows[0][2]) * 100
        print(f"| {model} | accuracy difference | | | {delta:+.2f} pp |")


if __name__ == "__main__":
    main()
