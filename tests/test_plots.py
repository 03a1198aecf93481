"""plots.py, evaluate.py and the plot-history / evaluate commands.

Most history tests use hand-written run directories (config.json + history.csv), so they
need no TensorFlow; the evaluate tests use a copy of the shared `tiny_run`.
"""

import csv
import json
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_keras import evaluate, plots
from lenet_keras.errors import BadInput
from lenet_keras.runs import HISTORY_COLUMNS, read_history
from lenet_keras.config import TrainConfig

HISTORY = [  # epoch, loss, accuracy, val_loss, val_accuracy, lr
    [1, 1.20, 0.55, 1.00, 0.60, 1.0e-3],
    [2, 0.80, 0.70, 0.75, 0.72, 7.5e-4],
    [3, 0.60, 0.78, 0.70, 0.79, 5.0e-4],  # best val_accuracy (ties with epoch 5: first wins)
    [4, 0.50, 0.82, 0.72, 0.77, 2.5e-4],
    [5, 0.45, 0.85, 0.74, 0.79, 0.0],
]


def make_run(path, model="lenet5", dataset=None, rows=HISTORY, columns=HISTORY_COLUMNS):
    """A run directory with config.json and history.csv only (no model)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(TrainConfig(model=model, dataset=dataset).to_json())
    with open(path / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def png_size(path):
    with Image.open(path) as image:
        image.load()  # decodes the whole file, not only the header
        return image.size


def lines_by_label(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def run_cli(*args):
    from lenet_keras.cli import cli

    return CliRunner().invoke(cli, list(map(str, args)))


def assert_one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0]


# ---------------------------------------------------------------------------------------
# plot_history
# ---------------------------------------------------------------------------------------


def test_history_lines_are_the_csv_values(tmp_path):
    run = make_run(tmp_path / "run")
    out = tmp_path / "history.png"
    figure = plots.plot_history(run, out)

    loss_ax, acc_ax, lr_ax = figure.axes
    rows = np.array(HISTORY)
    for ax, column, label in [(loss_ax, 1, "train"), (loss_ax, 3, "validation"),
                              (acc_ax, 2, "train"), (acc_ax, 4, "validation"),
                              (lr_ax, 5, "learning rate")]:
        line = lines_by_label(ax)[label]
        np.testing.assert_array_equal(line.get_xdata(), rows[:, 0])
        np.testing.assert_allclose(line.get_ydata(), rows[:, column])
    best = lines_by_label(acc_ax)["best: epoch 3 (val accuracy 0.790)"]
    assert (list(best.get_xdata()), list(best.get_ydata())) == ([3], [0.79])
    assert [ax.get_title() for ax in figure.axes] == ["Loss", "Accuracy", "Learning rate (end of epoch)"]
    assert all(ax.get_xlabel() == "epoch" and ax.get_ylabel() for ax in figure.axes)
    width, height = (round(v * plots.DPI) for v in plots.HISTORY_PANEL_SIZE)
    assert png_size(out) == (3 * width, height)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_history_without_lr_has_two_panels(tmp_path):
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    run = make_run(tmp_path / "run", rows=[r[:5] for r in HISTORY], columns=columns)
    figure = plots.plot_history([run], tmp_path / "h.png")
    assert len(figure.axes) == 2
    width, height = (round(v * plots.DPI) for v in plots.HISTORY_PANEL_SIZE)
    assert png_size(tmp_path / "h.png") == (2 * width, height) and width * 2 >= 600 and height >= 400


def test_one_epoch_plots_as_points(tmp_path):
    run = make_run(tmp_path / "run", rows=HISTORY[:1])
    figure = plots.plot_history(run)
    line = lines_by_label(figure.axes[1])["validation"]
    assert line.get_marker() == "o"
    assert list(line.get_xdata()) == [1] and list(line.get_ydata()) == [0.60]


def test_run_without_validation_stars_best_train_accuracy(tmp_path):
    rows = [[e, l, a, "", "", lr] for e, l, a, _, _, lr in HISTORY]  # --val-split 0
    figure = plots.plot_history(make_run(tmp_path / "run", rows=rows))
    lines = lines_by_label(figure.axes[1])
    assert "validation" not in lines
    assert "best: epoch 5 (train accuracy 0.850)" in lines


def test_overlay_labels_runs_by_model_and_dataset(tmp_path):
    mlp = make_run(tmp_path / "a", model="mlp")
    other = [[e, l * 0.5, a, vl, va * 1.1, lr] for e, l, a, vl, va, lr in HISTORY[:3]]
    cnn = make_run(tmp_path / "b", model="lenet5", dataset="/data/fashion-mnist", rows=other)
    figure = plots.plot_history([mlp, cnn], tmp_path / "cmp.png")

    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "mlp on fashion_mnist_sample · train" in legend
    assert "lenet5 on fashion-mnist · validation" in legend
    lines = lines_by_label(figure.axes[0])
    np.testing.assert_allclose(lines["lenet5 on fashion-mnist · train"].get_ydata(), [0.6, 0.4, 0.3])
    np.testing.assert_allclose(lines["mlp on fashion_mnist_sample · train"].get_ydata(),
                               [r[1] for r in HISTORY])
    # each run its own colour
    assert (lines["mlp on fashion_mnist_sample · train"].get_color()
            != lines["lenet5 on fashion-mnist · train"].get_color())
    best = lines_by_label(figure.axes[1])
    assert "lenet5 on fashion-mnist · best: epoch 3 (val accuracy 0.869)" in best


def test_same_label_runs_are_told_apart_by_directory(tmp_path):
    figure = plots.plot_history([make_run(tmp_path / "seed1"), make_run(tmp_path / "seed2")])
    labels = lines_by_label(figure.axes[0])
    assert "lenet5 on fashion_mnist_sample (seed1) · train" in labels
    assert "lenet5 on fashion_mnist_sample (seed2) · train" in labels


def test_history_of_a_real_run(tiny_run, tmp_path):
    figure = plots.plot_history(tiny_run, tmp_path / "h.png")
    rows = read_history(tiny_run)
    assert len(rows) == 2
    for ax, name in [(figure.axes[0], "val_loss"), (figure.axes[1], "accuracy")]:
        label = "validation" if name.startswith("val") else "train"
        np.testing.assert_allclose(lines_by_label(ax)[label].get_ydata(), [r[name] for r in rows])
    np.testing.assert_allclose(lines_by_label(figure.axes[2])["learning rate"].get_ydata(),
                               [r["lr"] for r in rows])


# ---------------------------------------------------------------------------------------
# plot-history command
# ---------------------------------------------------------------------------------------


def test_cli_plots_latest_run_next_to_its_history(in_tmp):
    make_run(in_tmp / "runs" / "old")
    latest = make_run(in_tmp / "runs" / "new", rows=HISTORY[:2])
    result = run_cli("plot-history")
    assert result.exit_code == 0, result.output
    assert png_size(latest / "history.png")[0] >= 600
    assert not (in_tmp / "runs" / "old" / "history.png").exists()


def test_cli_overlay_writes_out_file(in_tmp):
    a, b = make_run(in_tmp / "runs" / "a", model="mlp"), make_run(in_tmp / "runs" / "b")
    result = run_cli("plot-history", "--run-dir", a, "--run-dir", b, "--out", "figs/cmp.png")
    assert result.exit_code == 0, result.output
    assert png_size(in_tmp / "figs" / "cmp.png") == (1650, 550)
    result = run_cli("plot-history", "--run-dir", a, "--run-dir", b)
    assert result.exit_code == 0 and (in_tmp / "runs" / "comparison.png").is_file()


@pytest.mark.parametrize("case, words", [
    ("no history", ["no history.csv"]),
    ("header only", ["no epochs"]),
    ("not numbers", ["not a readable history"]),
    ("missing run", ["holds no run"]),
    ("no runs at all", ["no runs found"]),
    ("bad out", ["must end in .png"]),
])
def test_cli_bad_input_is_one_line(in_tmp, case, words):
    run = in_tmp / "runs" / "run"
    args = ["plot-history", "--run-dir", run]
    if case == "no history":
        make_run(run)
        (run / "history.csv").unlink()
    elif case == "header only":
        make_run(run, rows=[])
    elif case == "not numbers":
        make_run(run, rows=[[1, "nan?", "x", 1, 1, 1]])
    elif case == "no runs at all":
        args = ["plot-history"]
    elif case == "bad out":
        make_run(run)
        args += ["--out", in_tmp / "h.jpg"]
    assert_one_line_error(run_cli(*args), *words)
    assert not list(in_tmp.rglob("*.png")) and not list(in_tmp.rglob("*.jpg"))


def test_importing_plots_does_not_import_matplotlib():
    import subprocess

    code = "import lenet_keras.plots, lenet_keras.evaluate, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------
# Evaluation: metrics, figures, other datasets
# ---------------------------------------------------------------------------------------


def test_confusion_matrix_and_per_class_accuracy():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 2, 2])
    matrix = evaluate.confusion_matrix(labels, predictions, 4)
    np.testing.assert_array_equal(matrix[:3, :3], [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_allclose(evaluate.per_class_accuracy(matrix)[:3], [2 / 3, 0.5, 1.0])
    assert np.isnan(evaluate.per_class_accuracy(matrix)[3])  # no images of class 3
    table = evaluate.format_class_table(["a", "b", "c", "d"], matrix)
    assert table.splitlines()[1].split() == ["a", "3", "2", "0.667"]
    assert table.splitlines()[4].split() == ["d", "0", "0", "-"]
    assert table.splitlines()[-1].split()[-3:] == ["6", "4", "0.667"]
    probabilities = np.array([[0.5, 0.5], [0.0, 1.0]])
    assert evaluate.cross_entropy(probabilities, np.array([0, 0])) == pytest.approx(
        (-np.log(0.5) - np.log(1e-7)) / 2)


def test_confusion_figure_is_row_normalised(tmp_path):
    matrix = np.array([[3, 1], [0, 0]])
    figure = plots.plot_confusion_matrix(matrix, ["cat", "dog"], tmp_path / "cm.png", title="t")
    np.testing.assert_allclose(figure.axes[0].images[0].get_array(), [[0.75, 0.25], [0, 0]])
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["cat", "dog"]
    assert figure.axes[0].get_xlabel() == "predicted class"
    assert png_size(tmp_path / "cm.png") == (700, 600)


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    return shutil.copytree(tiny_run, tmp_path / "run")


def test_evaluate_cli_writes_figures_and_class_table(run_copy):
    result = run_cli("evaluate", "--run-dir", run_copy)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.output
    assert f"loss {metrics['test_loss']:.4f}" in result.output
    rows = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()[2:12]}
    assert list(rows) == (run_copy / "labels.txt").read_text().split()
    assert sum(int(r[0]) for r in rows.values()) == metrics["num_test"]
    correct = sum(int(r[1]) for r in rows.values())
    assert correct / metrics["num_test"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert png_size(run_copy / "confusion_matrix.png") == (800, 700)
    assert png_size(run_copy / "samples.png") == (1600, 1020)


def test_evaluate_matches_keras(run_copy):
    result = evaluate.evaluate_run(run_copy)
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert result.accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert result.loss == pytest.approx(metrics["test_loss"], rel=1e-4)
    assert result.confusion.sum() == metrics["num_test"] == 1000
    assert len(result.sample_images) == evaluate.SAMPLE_ROWS * evaluate.SAMPLE_COLS
    figure = plots.plot_samples(
        result.sample_images, result.labels[result.sample_indices],
        result.predictions[result.sample_indices], result.class_names)
    wrong = int(np.sum(result.labels[result.sample_indices] != result.predictions[result.sample_indices]))
    red = [ax for ax in figure.axes if ax.title.get_color() == "red"]
    assert len(red) == wrong


def sample_test_set():
    from lenet_keras.sources import SAMPLE_PATH

    with np.load(SAMPLE_PATH) as sample:
        return sample["x_test"], sample["y_test"], [str(n) for n in sample["class_names"]]


def test_evaluate_other_source_matches_classes_by_name(run_copy, tmp_path):
    x, y, names = sample_test_set()
    # The same test images with the class order reversed: labels are matched by name.
    path = tmp_path / "reversed.npz"
    np.savez(path, x_train=x[:20], y_train=9 - y[:20], x_test=x, y_test=9 - y,
             class_names=np.array(names[::-1]))
    own, other = evaluate.evaluate_run(run_copy), evaluate.evaluate_run(run_copy, str(path))
    np.testing.assert_array_equal(other.confusion, own.confusion)
    assert other.dataset_name == "reversed"


def test_evaluate_plain_folder_uses_every_image(run_copy, tmp_path):
    x, y, names = sample_test_set()
    chosen = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    for i in chosen:
        folder = tmp_path / "photos" / names[y[i]]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i]).save(folder / f"{i}.png")
    own = evaluate.evaluate_run(run_copy)
    result = run_cli("evaluate", "--run-dir", run_copy, "--dataset", tmp_path / "photos")
    assert result.exit_code == 0, result.output
    expected = np.mean(own.predictions[chosen] == own.labels[chosen])
    assert f"test accuracy {expected:.4f}" in result.output
    assert "on 30 images of photos" in result.output


def test_evaluate_rejects_other_classes(run_copy, tmp_path):
    x, y, _ = sample_test_set()
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=x[:20], y_train=y[:20], x_test=x[:50], y_test=y[:50])  # names 0..9
    assert_one_line_error(run_cli("evaluate", "--run-dir", run_copy, "--dataset", path),
                          "does not have the run's classes")
    assert not list(run_copy.glob("*.png"))
    with pytest.raises(BadInput):
        evaluate.match_classes(["a", "b"], ["a", "b", "c"], "x")


@pytest.mark.parametrize("case", ["missing run", "missing dataset", "no model"])
def test_evaluate_bad_input_is_one_line(run_copy, tmp_path, case):
    args = ["evaluate", "--run-dir", run_copy]
    if case == "missing run":
        args = ["evaluate", "--run-dir", tmp_path / "nope"]
    elif case == "missing dataset":
        args += ["--dataset", tmp_path / "nope.npz"]
    else:
        (run_copy / "model.keras").unlink()
    assert_one_line_error(run_cli(*args))
    assert not list(run_copy.glob("*.png"))
