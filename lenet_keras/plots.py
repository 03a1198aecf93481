"""Figures as PNG files: training history (one run or several overlaid), confusion
matrix, and a grid of sample test images.

Headless: every figure is a ``matplotlib.figure.Figure`` drawn by the Agg canvas, never
pyplot, so nothing needs a display and no global figure state builds up. matplotlib is
imported inside the functions, so importing this module (and ``cli.py --help``) is fast.
Each function returns its Figure, so a test or notebook can read back what was drawn.

    >>> fig = plot_history(["runs/mlp-...", "runs/lenet5-..."], "fc_vs_cnn.png")
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput, atomic_path

DPI = 100
# Inches per history panel: 2 panels -> 1100 x 550 px, 3 (with the learning rate) -> 1650 x 550.
HISTORY_PANEL_SIZE = (5.5, 5.5)
# Up to this many epochs, every epoch is drawn as a point too (one epoch is only a point).
MARKER_MAX_EPOCHS = 30
# Cells of the confusion matrix carry their value up to this many classes.
ANNOTATE_MAX_CLASSES = 20
FORMATS = (".png", ".pdf", ".svg")
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _new_figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def check_output_path(out):
    """BadInput unless ``out`` names a .png (or .pdf/.svg) file that can be written."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise BadInput(f"output '{out}' must end in {', '.join(FORMATS)}")
    if out.is_dir():
        raise BadInput(f"output '{out}' is a directory; name a file")
    return out


def save_figure(figure, out):
    """Write the figure to ``out`` via a temporary file, so no half-written image remains."""
    out = check_output_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        figure.savefig(tmp, dpi=DPI, format=out.suffix[1:].lower())
    return out


def run_label(config):
    """'<model> on <dataset>' for a TrainConfig, e.g. 'mlp on fashion_mnist_sample'."""
    from lenet_keras.sources import SAMPLE_NAME

    dataset = config.dataset
    if dataset in (None, "", "sample", SAMPLE_NAME):
        dataset = SAMPLE_NAME
    elif "/" in dataset or os.sep in dataset or dataset.endswith(".npz"):
        dataset = Path(dataset).name or dataset  # a path: its last part
    label = f"{config.model} on {dataset}"
    if config.positive_class:
        label += f" ({config.positive_class} vs rest)"
    return label


# ---------------------------------------------------------------------------------------
# Training history
# ---------------------------------------------------------------------------------------


@dataclass
class RunHistory:
    """history.csv of one run as arrays: ``series[name] = (epochs, values)``."""

    run_dir: Path
    label: str
    series: dict

    @property
    def num_epochs(self):
        return max(len(epochs) for epochs, _ in self.series.values())

    def best_epoch(self):
        """(epoch, value, metric) of the best validation accuracy (train accuracy when the
        run had no validation split), first of ties, as the checkpoint picks it."""
        metric = "val_accuracy" if "val_accuracy" in self.series else "accuracy"
        if metric not in self.series:
            return None
        epochs, values = self.series[metric]
        finite = np.where(np.isfinite(values), values, -np.inf)
        if not np.isfinite(finite).any():
            return None
        i = int(np.argmax(finite))
        return int(epochs[i]), float(values[i]), metric


def load_history(run_dir):
    """A RunHistory, or BadInput for a missing, empty or unreadable history.csv."""
    from lenet_keras.runs import load_config, read_history

    run_dir = Path(run_dir)
    path = run_dir / "history.csv"
    if not path.is_file():
        raise BadInput(f"run '{run_dir}' has no history.csv; train it first with: lenet-keras fit")
    try:
        rows = read_history(run_dir)
    except (ValueError, KeyError) as error:
        raise BadInput(f"'{path}' is not a readable history ({error})") from None
    series = {}
    for name in METRICS:
        points = [(row.get("epoch", i + 1), row[name]) for i, row in enumerate(rows) if name in row]
        if points:
            epochs, values = zip(*points)
            series[name] = (np.asarray(epochs, np.int64), np.asarray(values, np.float64))
    if not rows or not ({"loss", "accuracy"} & set(series)):
        raise BadInput(f"'{path}' holds no epochs yet; train the run for at least one epoch")
    return RunHistory(run_dir, run_label(load_config(run_dir)), series)


def _unique_labels(histories):
    labels = [h.label for h in histories]
    for h in histories:
        if labels.count(h.label) > 1:
            h.label = f"{h.label} ({h.run_dir.name})"


def _draw_history(history, color, prefix, axes):
    """One run's curves (train solid, validation dashed), its best epoch starred, and its
    learning rate on the third panel."""
    loss_ax, acc_ax = axes[0], axes[1]
    marker = "o" if history.num_epochs <= MARKER_MAX_EPOCHS else None
    style = dict(color=color, marker=marker, markersize=4)
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        for name, linestyle, what in ((metric, "-", "train"), (f"val_{metric}", "--", "validation")):
            if name in history.series:
                epochs, values = history.series[name]
                ax.plot(epochs, values, linestyle=linestyle, label=prefix + what, **style)
    best = history.best_epoch()
    if best is not None:
        epoch, value, metric = best
        which = "val" if metric.startswith("val") else "train"
        acc_ax.plot([epoch], [value], linestyle="none", marker="*", markersize=15, color=color,
                    markeredgecolor="black", zorder=5,
                    label=f"{prefix}best: epoch {epoch} ({which} accuracy {value:.3f})")
        for ax in (loss_ax, acc_ax):
            ax.axvline(epoch, color=color, linestyle=":", alpha=0.6, gid="best-epoch")
    if "lr" in history.series:
        epochs, values = history.series["lr"]
        axes[2].plot(epochs, values, label=prefix + "learning rate", **style)


def _label_history_axes(axes, has_lr):
    from matplotlib.ticker import MaxNLocator

    axes[0].set(title="Loss", xlabel="epoch", ylabel="cross-entropy loss")
    axes[1].set(title="Accuracy", xlabel="epoch", ylabel="accuracy (fraction correct)")
    if has_lr:
        axes[2].set(title="Learning rate (end of epoch)", xlabel="epoch", ylabel="learning rate")
        axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)


def plot_history(run_dirs=None, out=None):
    """Loss and accuracy per epoch (train solid, validation dashed) of one or more runs,
    the best epoch starred, and the learning rate on a third panel when it was logged.

    Args:
        run_dirs: a run directory, a list of them (overlaid, one colour each, legend
            "<model> on <dataset>"), or None for the latest run under ./runs.
        out: where to write the figure (.png, .pdf or .svg), or None to only return it.

    Returns:
        The matplotlib Figure. Its lines carry labels ("train", "validation", or
        "<model> on <dataset> · train" with several runs), so ``line.get_ydata()`` gives
        the values drawn.
    """
    from lenet_keras.runs import resolve_run_dir

    if run_dirs is None or isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = list(run_dirs) or [None]
    if out is not None:
        check_output_path(out)
    histories = [load_history(resolve_run_dir(d)) for d in run_dirs]
    _unique_labels(histories)
    several = len(histories) > 1
    has_lr = any("lr" in h.series for h in histories)

    panels = 3 if has_lr else 2
    figure = _new_figure((HISTORY_PANEL_SIZE[0] * panels, HISTORY_PANEL_SIZE[1]))
    axes = figure.subplots(1, panels)
    acc_ax = axes[1]
    for i, history in enumerate(histories):
        _draw_history(history, f"C{i % 10}", f"{history.label} · " if several else "", axes)

    _label_history_axes(axes, has_lr)
    if several:
        figure.suptitle(f"Training history: {len(histories)} runs "
                        "(solid: train, dashed: validation, star: best epoch)")
    else:
        figure.suptitle(f"Training history: {histories[0].label} ({histories[0].run_dir.name})")
    # Column-major legend: with several runs, one column per run (train, validation, best).
    handles, labels = acc_ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", fontsize="small",
                  ncols=min(len(histories), 4) if several else len(handles))
    if out is not None:
        save_figure(figure, out)
    return figure


# ---------------------------------------------------------------------------------------
# Evaluation figures
# ---------------------------------------------------------------------------------------


def normalise_rows(matrix):
    """Each row divided by its sum (rows without images stay 0)."""
    matrix = np.asarray(matrix, np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrix(matrix, class_names, out=None, title="Confusion matrix"):
    """Confusion matrix normalised per true class (each row sums to 1), class names on
    both axes, values in the cells up to ANNOTATE_MAX_CLASSES classes. Returns the Figure;
    the image's array (``figure.axes[0].images[0].get_array()``) is the normalised matrix."""
    normalised = normalise_rows(matrix)
    k = len(class_names)
    side = min(30.0, max(7.0, 0.5 * k + 3.0))
    figure = _new_figure((side, min(30.0, max(6.0, 0.5 * k + 2.0))))
    ax = figure.subplots()
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    fontsize = 10 if k <= 12 else max(4, 10 - k // 12)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=fontsize)
    ax.set_yticks(range(k), class_names, fontsize=fontsize)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    if k <= ANNOTATE_MAX_CLASSES:
        for row in range(k):
            for col in range(k):
                value = normalised[row, col]
                ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=fontsize - 1,
                        color="white" if value > 0.5 else "black")
    if out is not None:
        save_figure(figure, out)
    return figure


def plot_samples(images, true_labels, predicted_labels, class_names, out=None,
                 title="Test images", columns=8):
    """A grid of images titled with predicted and true class; mistakes in red with a red
    frame, correct predictions in green. Images are uint8 [N, H, W, 1|3]. Returns the Figure."""
    images = np.asarray(images)
    if len(images) == 0:
        raise BadInput("no images to show")
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    figure = _new_figure((max(6.0, 2.0 * columns), max(4.0, 2.4 * rows + 0.6)))
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    wrong = 0
    for ax, image, true, predicted in zip(axes, images, true_labels, predicted_labels):
        mistake = int(true) != int(predicted)
        wrong += mistake
        if image.shape[-1] == 1:
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image)
        color = "red" if mistake else "darkgreen"
        ax.set_title(f"pred: {class_names[int(predicted)]}\ntrue: {class_names[int(true)]}",
                     color=color, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set(color=color, linewidth=3 if mistake else 1)
    for ax in axes[len(images):]:
        ax.axis("off")
    figure.suptitle(f"{title}: {wrong} of {len(images)} wrong (red)")
    if out is not None:
        save_figure(figure, out)
    return figure
