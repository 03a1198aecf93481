"""Training-recipe search for one model on a GPU, through the real `lenet-keras fit`.

    python benchmarks/recipe_gpu.py --data .data/fashion_mnist.npz --model mobilenet_mini --out results/

Runs `python -m lenet_keras fit --backend jax` once per candidate recipe (15 epochs each,
one after the other) and ranks them by their best VALIDATION accuracy (history.csv); the
test accuracy (metrics.json) is printed beside it but never used to choose. Writes
OUT/recipe_gpu.json and recipe_gpu.md. Needs no TensorFlow (benchmarks/gpu_fit.sh shows
how to carry Keras to such a host).
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = {
    "defaults": [],
    "shift": ["--augment", "shift"],
    "flip": ["--augment", "flip"],
    "smooth 0.1": ["--label-smoothing", "0.1"],
    "flip + smooth 0.1": ["--augment", "flip", "--label-smoothing", "0.1"],
    "flip + adamw 0.05": ["--augment", "flip", "--weight-decay", "0.05"],
}


def fit(args, name, flags):
    run_dir = Path(tempfile.mkdtemp(prefix="recipe-")) / "run"
    command = [sys.executable, "-m", "lenet_keras", "fit", "--backend", "jax", "--dataset",
               args.data, "--model", args.model, "--epochs", str(args.epochs),
               "--run-dir", str(run_dir), *flags]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"recipe": name, "error": (done.stdout + done.stderr)[-500:]}
    with open(run_dir / "history.csv", newline="") as handle:
        history = list(csv.DictReader(handle))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"recipe": name, "flags": " ".join(flags),
            "best_val_accuracy": max(float(r["val_accuracy"]) for r in history),
            "test_accuracy": metrics["test_accuracy"],
            "images_per_second": metrics["train_images_per_second"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="mobilenet_mini")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", default="recipe_results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name, flags in CANDIDATES.items():
        results.append(fit(args, name, flags))
        print(json.dumps(results[-1]), flush=True)
    (out / "recipe_gpu.json").write_text(json.dumps(results, indent=2))
    ranked = sorted((r for r in results if "error" not in r),
                    key=lambda r: -r["best_val_accuracy"])
    lines = [f"| {args.model}, {args.epochs} epochs | best val accuracy | test accuracy |",
             "|---|---:|---:|"]
    lines += [f"| {r['recipe']} | {r['best_val_accuracy']:.4f} | {r['test_accuracy']:.4f} |"
              for r in ranked]
    (out / "recipe_gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
