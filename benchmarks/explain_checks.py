"""Are the heat maps of `lenet-keras explain` about the model, or just pictures of the
input? Two checks per method on real test images of a trained run:

    deletion       set the 10% of pixels the heat map ranks highest to the background;
                   the predicted class's probability must drop more, on average, than
                   when 10% of the pixels are chosen at random. Also printed: 10% chosen
                   at random among the non-background ("ink") pixels, a stricter baseline
                   (random pixels are mostly background, which blanking leaves as it is).
    randomisation  Adebayo et al. (NeurIPS 2018): the mean Spearman rank correlation
                   between the trained model's heat maps and those of the same
                   architecture freshly initialised must be below 0.5.

    python -m lenet_keras fit --dataset /usr/share/datasets/fashion-mnist --run-dir /tmp/explain-lenet5
    python benchmarks/explain_checks.py --run-dir /tmp/explain-lenet5 \\
        --dataset /usr/share/datasets/fashion-mnist --images 200 --json benchmarks/results/explain_checks.json

The test images are the first N of the dataset's test split, as the run's model sees them.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def test_images(dataset, count, input_shape):
    from lenet_keras.sources import load_arrays, to_grayscale, to_rgb

    arrays = load_arrays(dataset)
    x = arrays.x_test[:count]
    x = to_grayscale(x) if input_shape[-1] == 1 else to_rgb(x)
    return x.astype(np.float32), arrays.y_test[:count]


def check(model, forward, images, method, classes):
    from lenet_keras import explaining as ex

    start = time.perf_counter()
    maps = ex.heatmaps(model, forward, images, method, classes)
    seconds = time.perf_counter() - start
    drops = ex.deletion_drops(forward, images, maps, classes)
    rho, _, _ = ex.randomisation_correlations(model, images, method, classes)
    mean = {name: float(values.mean()) for name, values in drops.items()}
    return {
        "deletion_drop_heatmap": mean["heatmap"],
        "deletion_drop_random": mean["random"],
        "deletion_drop_random_ink": mean["random_ink"],
        "deletion_passes": mean["heatmap"] > mean["random"],
        "beats_random_ink": mean["heatmap"] > mean["random_ink"],
        "images_where_heatmap_beats_random": float(np.mean(drops["heatmap"] > drops["random"])),
        "rank_correlation_mean": float(rho.mean()),
        "rank_correlation_sd": float(rho.std()),
        "randomisation_passes": float(rho.mean()) < ex.MAX_RANK_CORRELATION,
        "seconds_per_image": seconds / len(images),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--dataset", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--methods", default="gradcam,saliency,occlusion")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    from lenet_keras import explaining as ex
    from lenet_keras.runs import load_model

    model = load_model(Path(args.run_dir) / "model.keras")
    forward = ex._keras_forward(model)
    images, labels = test_images(args.dataset, args.images, model.input_shape[1:])
    probabilities = forward(images)
    classes = probabilities.argmax(axis=1)
    import keras

    result = {"run_dir": args.run_dir, "model": model.name, "images": len(images),
              "test_accuracy_on_these": float(np.mean(classes == labels)),
              "backend": keras.backend.backend(), "cpu": cpu_name(), "methods": {}}
    print(f"{model.name}, {len(images)} test images of {args.dataset} "
          f"(accuracy {result['test_accuracy_on_these']:.3f}), {result['backend']}, {result['cpu']}")
    print(f"{'method':<10} {'top-10%':>8} {'random':>8} {'rnd ink':>8} {'deletion':>9} "
          f"{'spearman':>9} {'random.':>8} {'ms/img':>7}")
    for method in args.methods.split(","):
        row = check(model, forward, images, method, classes)
        result["methods"][method] = row
        print(f"{method:<10} {row['deletion_drop_heatmap']:8.3f} {row['deletion_drop_random']:8.3f} "
              f"{row['deletion_drop_random_ink']:8.3f} "
              f"{'pass' if row['deletion_passes'] else 'FAIL':>9} "
              f"{row['rank_correlation_mean']:9.3f} "
              f"{'pass' if row['randomisation_passes'] else 'FAIL':>8} "
              f"{row['seconds_per_image'] * 1000:7.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
