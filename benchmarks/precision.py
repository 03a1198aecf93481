"""mixed_bfloat16 against float32 on this machine's CPU: images/s and test accuracy, for
every registry model.

The package's own training path (``load_batches`` + ``build_for_config`` after
``devices.place``, as ``fit --precision ...`` runs it, with each model's registry recipe),
TensorFlow backend, one worker process per precision; the two alternate chunk by chunk
(an epoch, or ``--steps`` batches with ``--short``) so a CPU shared with other jobs slows
both alike. images/s: median over chunks of training steps only (the first, compiling
execution left out); ratio: median of back-to-back chunk pairs, the figure to read on a
busy CPU. Accuracy: the test accuracy of each after the last epoch.

    python benchmarks/precision.py --short                   # every model: ratio only
    python benchmarks/precision.py --short --accuracy        # + accuracy where bf16 wins
    python benchmarks/precision.py --models lenet5 --epochs 3  # epochs: ratio and accuracy

The rules behind the registry's ``ModelSpec.bf16_faster_on`` (what ``--precision auto``
reads): bf16 "wins" when both paired ratios (images per second, images per CPU-second)
are at least WIN_RATIO, and keeps "the same accuracy" when its test accuracy after
``--epochs`` epochs on the real Fashion-MNIST is within SAME_ACCURACY of float32's.
"""

import argparse
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from train_throughput import DEFAULT_DATA, Worker, load_average, paired_ratio, per_epoch_rate  # noqa: E402

from lenet_keras.config import TrainConfig  # noqa: E402
from lenet_keras.devices import cpu_bf16_kind  # noqa: E402
from lenet_keras.registry import list_models  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")
# Pairs of chunks on this shared 2-core CPU differ by a few percent: below 1.10x a "win"
# could be noise, and it would not pay for the accuracy check's risk.
WIN_RATIO = 1.10
# One seed's test accuracy moves by about this much between runs of the same config.
SAME_ACCURACY = 0.005


def worker_options(model, precision, args, epoch_steps=None):
    """What fit would run for ``model`` (its registry recipe), at ``precision``."""
    config = TrainConfig.for_model(model, recipe=args.recipe, dataset=args.data, epochs=args.epochs,
                                   batch_size=args.batch_size, precision=precision, seed=args.seed)
    options = {k: v for k, v in asdict(config).items() if k != "created"}
    return {**options, "epoch_steps": epoch_steps} if epoch_steps else options


def compare(model, args, chunks, epoch_steps=None, evaluate=True):
    """Alternate ``chunks`` chunks of the two workers; (rows, paired ratio)."""
    workers = [Worker(p, "package", worker_options(model, p, args, epoch_steps)) for p in PRECISIONS]
    unit = f"{epoch_steps} steps" if epoch_steps else "epoch"
    for chunk in range(1, chunks + 1):
        for worker in workers:
            row = worker.call("epoch")
            worker.epochs.append(row)
            print(f"  {model} {unit} {chunk:2d} {worker.name:>15}: {per_epoch_rate(row):8.0f} img/s",
                  flush=True)
    rows = []
    for worker in workers:
        accuracy = worker.call("evaluate")["test_accuracy"] if evaluate else float("nan")
        rates = [per_epoch_rate(r) for r in worker.epochs[1:] if r["images"]]
        rows.append((worker.name, statistics.median(rates), accuracy))
        worker.close()
    ratio = paired_ratio(workers[1], workers[0]) if chunks > 1 else float("nan")
    return rows, ratio, cpu_ratio(workers[1], workers[0])


def cpu_ratio(a, b):
    """Median over chunk pairs of images per CPU-second (the worker's threads, the whole
    fit call) of a over b: what an image costs, which other jobs on a shared CPU change
    far less than they change images per wall-clock second."""
    pairs = [(x["images"] / x["cpu_seconds"]) / (y["images"] / y["cpu_seconds"])
             for x, y in zip(a.epochs[1:], b.epochs[1:]) if x["images"] and y["images"]]
    return statistics.median(pairs) if pairs else float("nan")


def short_table(results, args):
    batch = args.batch_size or "the recipe's"
    print(f"| model (batch {batch}, {args.rounds} x {args.steps} steps each, "
          "first left out) | float32 images/s | bf16 images/s | bf16 / float32 (paired) | "
          f"per CPU-second (paired) | bf16 wins (both >= {WIN_RATIO:.2f}x) |")
    print("|---|---:|---:|---:|---:|---|")
    for model, (rows, ratio, per_cpu) in results.items():
        win = "yes" if wins(ratio, per_cpu) else "no"
        print(f"| {model} | {rows[0][1]:,.0f} | {rows[1][1]:,.0f} | **{ratio:.2f}x** | "
              f"{per_cpu:.2f}x | {win} |")


def wins(ratio, per_cpu):
    """Faster by the clock and cheaper per image: one alone can be other jobs' doing."""
    return ratio >= WIN_RATIO and per_cpu >= WIN_RATIO


def accuracy_table(results, args):
    batch = args.batch_size or "the recipe's"
    print(f"| model ({args.epochs} epochs, batch {batch}) | precision | images/s "
          "| bf16 / float32 (paired) | per CPU-second (paired) | test accuracy |")
    print("|---|---|---:|---:|---:|---:|")
    for model, (rows, ratio, per_cpu) in results.items():
        for name, rate, accuracy in rows:
            shown = f"**{ratio:.2f}x** | {per_cpu:.2f}x" if name != "float32" else " | "
            print(f"| {model} | {name} | {rate:,.0f} | {shown} | {accuracy:.4f} |")
        delta = rows[1][2] - rows[0][2]
        same = "same" if abs(delta) <= SAME_ACCURACY else "NOT the same"
        print(f"| {model} | accuracy difference | | | | {delta * 100:+.2f} pp ({same}: "
              f"within {SAME_ACCURACY * 100:.1f} pp) |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--models", nargs="+", default=None,
                        help="registry names (default: every model with --short, else lenet5 and lenet5_bn)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: each model's registry recipe (128 unless it says otherwise)")
    parser.add_argument("--seed", type=int, default=None, help="default: TrainConfig's")
    parser.add_argument("--recipe", default=None,
                        help="a named recipe (registry.RECIPES) over the models' own, e.g. fast")
    parser.add_argument("--short", action="store_true",
                        help="throughput ratio only: --rounds chunks of --steps batches per precision")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--accuracy", action="store_true",
                        help="with --short: then train the models bf16 wins on for --epochs each")
    args = parser.parse_args()
    models = args.models or (list_models() if args.short else ["lenet5", "lenet5_bn"])
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"CPU: {cpu} (bf16 kind: {cpu_bf16_kind() or 'none'}); "
          f"load average before: {load_average():.1f}", flush=True)
    if args.short:
        short = {m: compare(m, args, args.rounds, args.steps, evaluate=False) for m in models}
        print(f"\nload average after the short runs: {load_average():.1f}\n")
        short_table(short, args)
        models = [m for m, (_, ratio, per_cpu) in short.items() if wins(ratio, per_cpu)]
        print(f"\nbf16 wins on: {', '.join(models) or 'none'}", flush=True)
        models = models if args.accuracy else []
    if models:
        results = {m: compare(m, args, args.epochs) for m in models}
        print(f"\nload average after: {load_average():.1f}\n")
        accuracy_table(results, args)


if __name__ == "__main__":
    main()
