"""Choose a training recipe for the model family on VALIDATION data only.

Full 15-epoch runs of every candidate do not fit a shared 2-core CPU, so each candidate
trains on a seeded subset of Fashion-MNIST's training split and is scored on a disjoint
held-out slice of that same training split. The official test split is never read.

The subset goes into an .npz whose "test" arrays ARE that held-out training slice, so
`python cli.py fit` reports validation accuracy where it says test accuracy.

    python benchmarks/recipe_search.py                     # every candidate, mobilenet_mini
    python benchmarks/recipe_search.py --model lenet5_bn --only base,smooth

Finished runs under runs/recipe/ are reused; rerun to print the table again.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# name -> extra `fit` flags. "base" is the current global default (Adam 2e-3, cosine).
CANDIDATES = {
    "base": [],
    "smooth": ["--label-smoothing", "0.1"],
    "flip": ["--augment", "flip"],
    "shift+flip": ["--augment", "shift+flip"],
    "adamw": ["--weight-decay", "0.05"],
    "smooth+flip": ["--label-smoothing", "0.1", "--augment", "flip"],
}


def make_subset(source, out, train_images, heldout_images, seed):
    """An .npz: ``train_images`` training-split images as x_train, a disjoint
    ``heldout_images`` as x_test (validation in disguise; the test split is not used)."""
    from lenet_keras.sources import load_idx_folder

    if out.exists():
        return out
    arrays = load_idx_folder(source)
    order = np.random.default_rng(seed).permutation(len(arrays.x_train))
    train, held = order[:train_images], order[train_images:train_images + heldout_images]
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, x_train=arrays.x_train[train], y_train=arrays.y_train[train],
        x_test=arrays.x_train[held], y_test=arrays.y_train[held],
        class_names=np.array(arrays.class_names),
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--model", default="mobilenet_mini")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--heldout-images", type=int, default=10_000)
    parser.add_argument("--only", default=None, help="comma-separated candidate names")
    args = parser.parse_args()

    subset = make_subset(args.dataset, ROOT / "runs" / "recipe" /
                         f"fashion-train{args.train_images}-val{args.heldout_images}.npz",
                         args.train_images, args.heldout_images, seed=0)
    names = args.only.split(",") if args.only else list(CANDIDATES)
    rows = []
    for name in names:
        run_dir = ROOT / "runs" / "recipe" / f"{args.model}-e{args.epochs}-{name}"
        command = [sys.executable, str(ROOT / "cli.py"), "fit", "--dataset", str(subset),
                   "--model", args.model, "--epochs", str(args.epochs),
                   "--run-dir", str(run_dir), *CANDIDATES[name]]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        rows.append((name, " ".join(CANDIDATES[name]) or "(defaults)",
                     metrics["test_accuracy"], metrics["train_seconds"]))
    print(f"\n{args.model}, {args.epochs} epochs on {args.train_images:,} training-split "
          "images (10% of them the checkpoint's validation); accuracy of the best epoch on "
          f"{args.heldout_images:,} other training-split images")
    print("| candidate | flags | held-out val accuracy | train s |\n|---|---|---:|---:|")
    for name, flags, accuracy, seconds in rows:
        print(f"| {name} | `{flags}` | {accuracy:.4f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
