"""The model zoo: train (or reuse), export and compare every registry model.

For each model it reuses ``runs/zoo/<model>/`` when that run is finished (metrics.json),
else trains it there with ``cli.py fit`` (the model's registry defaults); then reuses
``exports/zoo/<model>/report.json`` when it is newer than the model (and has
``int8_vs_float32``), else exports int8 and float32 TFLite with ``cli.py export``. From
metrics.json and report.json it writes:

- the "Model zoo" table, between the ``model-zoo`` markers in docs/RESULTS.md;
- docs/model_zoo.png: test accuracy against int8 latency and int8 file size, with the
  Pareto front (no other model both faster/smaller and more accurate).

    python benchmarks/model_zoo.py                       # every model (hours on 2 cores)
    python benchmarks/model_zoo.py --models 'lenet5*'    # train only these (table: all finished)
    python benchmarks/model_zoo.py --no-train            # table from finished runs only

Every figure comes from the run and export files, never typed by hand.
"""

import argparse
import fnmatch
import json
import os
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

START, END = "<!-- model-zoo:start -->", "<!-- model-zoo:end -->"
FORMATS = "int8,float32"


def cpu_name():
    """The CPU model name from /proc/cpuinfo, with the int8 extensions it reports."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])
    extensions = [label for flag, label in [("amx_int8", "AMX"), ("avx512_vnni", "AVX512-VNNI")]
                  if flag in flags]
    return f"{name} with {', '.join(extensions)}" if extensions else name


def run(command):
    print("$", " ".join(str(c) for c in command), flush=True)
    subprocess.run([sys.executable, *map(str, command)], check=True, cwd=ROOT)


def ensure_trained(model, run_dir, dataset, epochs, train):
    """metrics.json of the finished run (training it first if ``train``), else None."""
    metrics = run_dir / "metrics.json"
    if not metrics.exists() and train:
        run(["cli.py", "fit", "--dataset", dataset, "--model", model, "--epochs", epochs,
             "--run-dir", run_dir])
    return json.loads(metrics.read_text()) if metrics.exists() else None


def ensure_exported(run_dir, export_dir):
    """report.json of the run's export, exporting again when the model is newer or the
    report predates int8_vs_float32 (its files predate the int8 graph rewrites too)."""
    report = export_dir / "report.json"
    if (not report.exists() or "int8_vs_float32" not in json.loads(report.read_text())
            or report.stat().st_mtime < (run_dir / "model.keras").stat().st_mtime):
        run(["cli.py", "export", "--run-dir", run_dir, "--out", export_dir,
             "--quantize", FORMATS])
    return json.loads(report.read_text())


def zoo_row(model, metrics, report, config):
    formats = report["formats"]
    return {
        "model": model,
        "params": metrics["params"],
        "epochs": metrics["epochs"],
        "train_seconds": metrics["train_seconds"],
        "keras_accuracy": metrics["test_accuracy"],
        "int8_accuracy": formats["int8"]["test_accuracy"],
        "int8_bytes": formats["int8"]["bytes"],
        "int8_latency_us": formats["int8"]["latency_us"],
        "float32_latency_us": formats["float32"]["latency_us"],
        # On the machine that exported: above 1, serve and the web page take float32.
        "int8_vs_float32": report["int8_vs_float32"]["ratio"],
        "recipe": config.recipe_changes() or "defaults",
    }


def pareto(rows, cost):
    """Names of the rows no other row beats on both ``cost`` (lower) and accuracy."""
    front, best = set(), -1.0
    for row in sorted(rows, key=lambda r: (r[cost], -r["keras_accuracy"])):
        if row["keras_accuracy"] > best:
            front.add(row["model"])
            best = row["keras_accuracy"]
    return front


def markdown_table(rows, command, missing):
    front = pareto(rows, "int8_latency_us")
    lines = [
        "| model | params | epochs | train s | test acc (Keras) | test acc (int8) "
        "| int8 bytes | int8 µs | float32 µs | int8 / float32 | recipe |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["keras_accuracy"]):
        name = f"**`{r['model']}`**" if r["model"] in front else f"`{r['model']}`"
        lines.append(
            f"| {name} | {r['params']:,} | {r['epochs']} | {r['train_seconds']:.0f} "
            f"| {r['keras_accuracy']:.4f} | {r['int8_accuracy']:.4f} | {r['int8_bytes']:,} "
            f"| {r['int8_latency_us']:.1f} | {r['float32_latency_us']:.1f} "
            f"| {r['int8_vs_float32']:.2f}x | {r['recipe']} |")
    caption = [
        "",
        f"Made by `{command}` on {date.today().isoformat()}, {cpu_name()} "
        f"({os.cpu_count()} cores shared with other jobs: train seconds are noisy). "
        "Test accuracy is the real Fashion-MNIST test split (10,000 images) for the best "
        "validation epoch; int8 is the full-integer TFLite file on LiteRT; latencies are "
        "single-image LiteRT calls, 1 thread (report.json of `cli.py export`); "
        "int8 / float32 above 1.00x: int8 is the slower on this CPU, and `serve` and "
        "the web page take the float32 file. "
        "**Bold**: on the accuracy/int8-latency Pareto front.",
    ]
    if missing:
        caption.append(f"Not in this table yet (no finished run): {', '.join(missing)}.")
    return "\n".join(lines + caption)


def write_readme(readme, table):
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def plot(rows, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for axis, cost, label in [(axes[0], "int8_latency_us", "int8 single-image latency (µs)"),
                              (axes[1], "int8_bytes", "int8 file size (bytes)")]:
        front = pareto(rows, cost)
        for r in rows:
            on_front = r["model"] in front
            axis.scatter(r[cost], r["keras_accuracy"] * 100, s=40,
                         color="tab:red" if on_front else "tab:blue", zorder=3)
            axis.annotate(r["model"], (r[cost], r["keras_accuracy"] * 100), fontsize=8,
                          xytext=(4, 3), textcoords="offset points")
        line = sorted((r for r in rows if r["model"] in front), key=lambda r: r[cost])
        axis.step([r[cost] for r in line], [r["keras_accuracy"] * 100 for r in line],
                  where="post", color="tab:red", alpha=0.6, label="Pareto front")
        axis.set_xscale("log")
        # Plain numbers on the log axis; minor-tick labels like "3x10^1" overlapped.
        axis.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1, 2, 5)))
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel(label)
        axis.grid(alpha=0.3, which="both")
        axis.legend(loc="lower right")
    axes[0].set_ylabel("Fashion-MNIST test accuracy (%)")
    figure.suptitle(f"Model zoo on Fashion-MNIST ({cpu_name()}, LiteRT 1 thread)", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--models", default="*",
                        help="glob: the registry models to train if unfinished")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "zoo")
    parser.add_argument("--exports", type=Path, default=ROOT / "exports" / "zoo")
    parser.add_argument("--readme", type=Path, default=ROOT / "docs" / "RESULTS.md")
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "model_zoo.png")
    parser.add_argument("--no-train", action="store_true",
                        help="only tabulate runs that are already finished")
    args = parser.parse_args()

    from lenet_keras.registry import list_models
    from lenet_keras.config import TrainConfig

    rows, missing = [], []
    for name in list_models():
        # Only models matching --models are trained; every finished run is tabulated.
        train = not args.no_train and fnmatch.fnmatch(name, args.models)
        run_dir = args.runs / name
        metrics = ensure_trained(name, run_dir, args.dataset, args.epochs, train)
        if metrics is None:
            missing.append(name)
            continue
        report = ensure_exported(run_dir, args.exports / name)
        config = TrainConfig.from_json((run_dir / "config.json").read_text())
        rows.append(zoo_row(name, metrics, report, config))
    if not rows:
        raise SystemExit("no finished runs to tabulate")
    command = "python benchmarks/model_zoo.py"
    table = markdown_table(rows, command, missing)
    write_readme(args.readme, table)
    plot(rows, args.png)
    (args.runs / "zoo.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(table)
    print(f"wrote {args.readme} and {args.png}")


if __name__ == "__main__":
    main()
