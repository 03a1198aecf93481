"""Evaluation of a run's best model: predictions, confusion matrix, per-class accuracy.

    >>> result = evaluate_run("runs/lenet5-fashion_mnist_sample-20250101-120000")
    >>> result.accuracy, result.loss
    >>> print(format_class_table(result.class_names, result.confusion))

The run's own test split is rebuilt from its config.json (same seed, same split), so the
accuracy here equals metrics.json's. Another source with the same classes (``dataset=``)
is read at the model's input size and colour; its class order may differ from the run's
(labels are matched by name). A plain folder of class subfolders (no train/ and test/)
is evaluated whole: it is the test set.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput
from lenet_keras.plots import plot_confusion_matrix, plot_samples
from lenet_keras.runs import load_config, load_model, read_labels
from lenet_keras.pipelines import (
    array_pipeline, binary_class_names, evaluation_batches, positive_class_index,
)
from lenet_keras.sources import (
    dataset_name, load_image_folder, source_kind, to_grayscale, to_rgb,
)

# Keras' SparseCategoricalCrossentropy clips probabilities to [eps, 1 - eps]; the loss
# here uses the same epsilon so it matches model.evaluate.
EPSILON = 1e-7
# Test images drawn (seeded) for samples.png: 4 rows of 8.
SAMPLE_ROWS, SAMPLE_COLS = 4, 8


@dataclass
class Evaluation:
    """Predictions of one model on one test set. Labels use the run's class indices."""

    run_dir: Path
    model_name: str
    dataset_name: str
    class_names: list
    labels: np.ndarray  # [N] int64 true classes
    probabilities: np.ndarray  # [N, K] float32 softmax outputs
    sample_indices: np.ndarray  # [S] indices into labels of the images in sample_images
    sample_images: np.ndarray  # [S, H, W, C] uint8
    skipped_files: list = field(default_factory=list)  # unreadable files of the test source
    # evaluate --explain N: {"method", "indices" [N], "images" [N,H,W,C], "maps" [N,H,W]}
    explained: dict = None

    @property
    def predictions(self):
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self):
        return float(np.mean(self.predictions == self.labels)) if len(self.labels) else 0.0

    @property
    def loss(self):
        return cross_entropy(self.probabilities, self.labels)

    @property
    def confusion(self):
        return confusion_matrix(self.labels, self.predictions, len(self.class_names))


# ---------------------------------------------------------------------------------------
# Metrics on numpy arrays
# ---------------------------------------------------------------------------------------


def confusion_matrix(labels, predictions, num_classes):
    """Counts [K, K]: row = true class, column = predicted class."""
    labels = np.asarray(labels, np.int64)
    predictions = np.asarray(predictions, np.int64)
    flat = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def per_class_accuracy(matrix):
    """Fraction of each true class predicted correctly (recall); NaN for absent classes."""
    matrix = np.asarray(matrix, np.float64)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def cross_entropy(probabilities, labels, epsilon=EPSILON):
    """Mean sparse categorical cross-entropy of softmax outputs, as Keras computes it."""
    if len(labels) == 0:
        return 0.0
    picked = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(np.mean(-np.log(np.clip(picked, epsilon, 1.0 - epsilon))))


def format_class_table(class_names, matrix):
    """Per-class accuracy as a plain-text table, one row per class plus the total."""
    matrix = np.asarray(matrix)
    accuracy = per_class_accuracy(matrix)
    width = max([len("class"), len("all classes")] + [len(n) for n in class_names]) + 2
    lines = [f"{'class':<{width}}{'images':>8}{'correct':>9}{'accuracy':>10}"]
    for name, row, correct, value in zip(class_names, matrix, np.diag(matrix), accuracy):
        shown = "-" if np.isnan(value) else f"{value:.3f}"
        lines.append(f"{name:<{width}}{int(row.sum()):>8}{int(correct):>9}{shown:>10}")
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    overall = f"{correct / total:.3f}" if total else "-"
    lines.append(f"{'all classes':<{width}}{total:>8}{correct:>9}{overall:>10}")
    return "\n".join(lines)


def match_classes(run_classes, data_classes, source):
    """Index map data class -> run class, by name. BadInput unless the names are the same set."""
    missing = [n for n in run_classes if n not in data_classes]
    extra = [n for n in data_classes if n not in run_classes]
    if missing or extra or len(data_classes) != len(run_classes):
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"has extra {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        detail = "; ".join(parts) or "has duplicate class names"
        raise BadInput(f"dataset '{source}' does not have the run's classes: it {detail} "
                       f"(the run's classes: {', '.join(run_classes[:10])}"
                       f"{' ...' if len(run_classes) > 10 else ''})")
    return np.array([run_classes.index(n) for n in data_classes], np.int64)


# ---------------------------------------------------------------------------------------
# Test data
# ---------------------------------------------------------------------------------------


def _plain_class_folder(source):
    return source_kind(source) == "folder" and not (Path(source) / "train").is_dir()


def _whole_folder(source, config, input_shape):
    """A folder of class subfolders, every image as test data: (dataset, count, names,
    skipped files)."""
    height, _, channels = input_shape
    arrays = load_image_folder(source, image_size=height, seed=config.seed, test_fraction=0)
    x, y = arrays.x_train, arrays.y_train
    x = to_grayscale(x) if channels == 1 else to_rgb(x)
    class_names = arrays.class_names
    if config.positive_class is not None:
        y = (y == positive_class_index(class_names, config.positive_class)).astype(np.int64)
        class_names = binary_class_names(config.positive_class)
    return array_pipeline(x, y, config.batch_size), len(x), class_names, arrays.skipped_files


def load_test_set(config, input_shape, dataset=None):
    """(tf.data test set, image count, class names, dataset name, skipped files) for a
    run's model.

    Without ``dataset``: the run's own test split. With it: that source's test split
    (a whole plain class folder), read at the model's input size and colour.
    """
    if dataset is None:
        bundle = evaluation_batches(config)
        return bundle.test, bundle.num_test, bundle.class_names, bundle.name, bundle.skipped_files
    if _plain_class_folder(dataset):
        data, count, class_names, skipped = _whole_folder(dataset, config, input_shape)
        return data, count, class_names, dataset_name(dataset), skipped
    height, width, channels = input_shape
    bundle = evaluation_batches(replace(
        config, dataset=dataset, image_size=height,
        color="grayscale" if channels == 1 else "rgb",
    ))
    if bundle.image_shape != (height, width, channels):
        raise BadInput(f"dataset '{dataset}' gives images of shape {bundle.image_shape}; "
                       f"the model takes {(height, width, channels)}")
    return bundle.test, bundle.num_test, bundle.class_names, bundle.name, bundle.skipped_files


def predict(model, dataset, keep=()):
    """Run the model over a dataset of (images, labels) batches.

    Returns (labels [N], probabilities [N, K], images [len(keep), H, W, C] uint8) where
    the images are those at the positions in ``keep`` (sorted).
    """
    keep = np.asarray(sorted(keep), np.int64)
    labels, probabilities, kept = [], [], []
    seen = 0
    for images, batch_labels in dataset:
        probabilities.append(np.asarray(model.predict_on_batch(images), np.float32))
        labels.append(np.asarray(batch_labels, np.int64))
        wanted = keep[(keep >= seen) & (keep < seen + len(labels[-1]))] - seen
        if len(wanted):
            kept.append(np.clip(np.rint(np.asarray(images)[wanted]), 0, 255).astype(np.uint8))
        seen += len(labels[-1])
    if not labels:
        raise BadInput("the test set is empty; nothing to evaluate")
    images = np.concatenate(kept) if kept else np.zeros((0, 1, 1, 1), np.uint8)
    return np.concatenate(labels), np.concatenate(probabilities), images


def images_at(dataset, indices):
    """The images [len(indices), H, W, C] (float32 raw pixels) at sorted ``indices`` of
    a dataset of (images, labels) batches."""
    indices = np.asarray(indices, np.int64)
    kept, seen = [], 0
    for images, batch_labels in dataset:
        count = len(np.asarray(batch_labels))
        wanted = indices[(indices >= seen) & (indices < seen + count)] - seen
        if len(wanted):
            kept.append(np.asarray(images, np.float32)[wanted])
        seen += count
    return np.concatenate(kept)


def explain_some(model, dataset, labels, predictions, count, seed):
    """Heat maps of ``count`` test images, mistakes first (each group in a seeded random
    order): Grad-CAM, or saliency for a model without convolutions."""
    from lenet_keras.explaining import gradcam_stage, heatmaps, _keras_forward

    order = np.random.default_rng(seed).permutation(len(labels))
    wrong = labels[order] != predictions[order]
    chosen = np.concatenate([order[wrong], order[~wrong]])[:count]
    try:
        gradcam_stage(model)
        method = "gradcam"
    except BadInput:
        method = "saliency"
    by_position = np.sort(chosen)
    images = images_at(dataset, by_position)
    maps = heatmaps(model, _keras_forward(model), images, method, predictions[by_position])
    # back in the chosen order: mistakes first
    where = np.searchsorted(by_position, chosen)
    return {"method": method, "indices": chosen, "images": images[where], "maps": maps[where]}


def evaluate_run(run_dir, dataset=None, samples=SAMPLE_ROWS * SAMPLE_COLS, safe_mode=True,
                 explain=0):
    """Evaluate a run's model.keras on its test split (or on ``dataset``'s).

    Args:
        run_dir: a run directory made by ``train``.
        dataset: another source with the same class names (any order), or None.
        samples: how many test images (seeded choice) to keep for a sample grid.
        explain: how many test images (mistakes first) get a heat map (explained.png).

    Returns:
        An Evaluation. Raises BadInput for a run without a model or a dataset whose
        classes differ from the run's.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "model.keras").exists():
        raise BadInput(f"run '{run_dir}' has no model.keras yet; finish training it first")
    config = load_config(run_dir)
    labels_file = run_dir / "labels.txt"
    run_classes = read_labels(run_dir) if labels_file.exists() else None  # checked before TF
    model = load_model(run_dir / "model.keras", safe_mode=safe_mode)
    input_shape = tuple(int(d) for d in model.input_shape[1:])
    data, count, data_classes, name, skipped = load_test_set(config, input_shape, dataset)
    run_classes = run_classes if run_classes is not None else list(data_classes)
    remap = match_classes(run_classes, list(data_classes), dataset or name)
    if int(model.output_shape[-1]) != len(run_classes):
        raise BadInput(f"model.keras has {model.output_shape[-1]} outputs but labels.txt "
                       f"lists {len(run_classes)} classes")

    keep = np.random.default_rng(config.seed).choice(count, min(samples, count), replace=False)
    labels, probabilities, images = predict(model, data, keep)
    explained = None
    if explain:
        explained = explain_some(model, data, remap[labels], probabilities.argmax(axis=1),
                                 min(explain, count), config.seed)
    return Evaluation(
        run_dir=run_dir, model_name=config.model, dataset_name=name,
        class_names=list(run_classes), labels=remap[labels], probabilities=probabilities,
        sample_indices=np.sort(keep), sample_images=images, skipped_files=list(skipped),
        explained=explained,
    )


def write_figures(result, out_dir=None):
    """confusion_matrix.png, samples.png (and explained.png when the evaluation has heat
    maps) for an Evaluation; returns their paths."""
    out_dir = Path(out_dir or result.run_dir)
    title = f"{result.model_name} on {result.dataset_name}"
    confusion_path = out_dir / "confusion_matrix.png"
    samples_path = out_dir / "samples.png"
    plot_confusion_matrix(
        result.confusion, result.class_names, confusion_path,
        title=f"Confusion matrix: {title} (accuracy {result.accuracy:.3f}, "
              f"{len(result.labels)} test images)",
    )
    plot_samples(
        result.sample_images, result.labels[result.sample_indices],
        result.predictions[result.sample_indices], result.class_names, samples_path,
        title=f"Test images: {title}", columns=SAMPLE_COLS,
    )
    if result.explained is None:
        return confusion_path, samples_path
    from lenet_keras.explaining import TITLES, plot_explained

    shown, explained_path = result.explained, out_dir / "explained.png"
    index = shown["indices"]
    predicted = result.predictions[index]
    plot_explained(shown["images"], shown["maps"], result.labels[index], predicted,
                   result.probabilities[index, predicted], result.class_names, explained_path,
                   title=f"{TITLES[shown['method']]} of the predicted class: {title}",
                   columns=SAMPLE_COLS)
    return confusion_path, samples_path, explained_path
