"""The click front end: commands, run directories, and one-line errors for bad input."""

import json

import pytest

from conftest import ROOT
from lenet_keras.runs import read_history


def test_help_lists_every_command_and_the_readme_reference_names_each(invoke):
    from lenet_keras.cli import cli

    result = invoke("--help")
    assert result.exit_code == 0
    commands = sorted(cli.commands)
    assert {"fit", "evaluate", "export", "predict", "serve", "models", "datasets"} <= set(commands)
    for command in commands:
        assert f"  {command} " in result.output, command
    readme = (ROOT / "README.md").read_text()
    reference = readme[readme.index("## Commands"):].split("\n## ")[0]
    assert sorted(c for c in commands if f"| `{c}` |" in reference) == commands


def test_models_lists_the_registry_with_parameter_counts(invoke):
    result = invoke("models")
    assert result.exit_code == 0
    assert "lenet5_classic" in result.output and "60,850" in result.output
    lenet5_line = next(line for line in result.output.splitlines() if line.startswith("lenet5 "))
    assert "61,706" in lenet5_line


def test_datasets_lists_local_and_tfds_sources(invoke):
    result = invoke("datasets")
    assert result.exit_code == 0
    assert "fashion-mnist" in result.output and "cifar10" in result.output


@pytest.mark.slow
def test_fit_writes_a_run_directory_and_evaluate_finds_it(in_tmp, invoke):
    result = invoke("fit", "--epochs", 2, "--batch-size", 64, "--model", "lenet5_mini")
    assert result.exit_code == 0, result.output
    (run_dir,) = (in_tmp / "runs").iterdir()
    assert run_dir.name.startswith("lenet5_mini-fashion_mnist_sample-")
    for name in ["config.json", "history.csv", "model.keras", "labels.txt", "metrics.json"]:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "tensorboard").is_dir()
    assert not (run_dir / "backup").exists()  # resume state is gone once the run is done
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and 0.3 < metrics["test_accuracy"] <= 1
    assert metrics["train_images_per_second"] > 0 and metrics["train_seconds"] > 0
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert history[1]["lr"] < history[0]["lr"]  # cosine decay
    assert (run_dir / "labels.txt").read_text().split()[0] == "t-shirt_top"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "lenet5_mini" and config["epochs"] == 2

    result = invoke("evaluate")
    assert result.exit_code == 0, result.output
    assert f"{metrics['test_accuracy']:.4f}" in result.output

    again = invoke("fit", "--epochs", 2, "--batch-size", 64, "--model", "lenet5_mini",
                   "--run-dir", run_dir)
    assert again.exit_code == 0 and "already finished" in again.output


@pytest.mark.slow
def test_fit_on_a_folder_with_a_corrupt_png_trains_and_reports_it(in_tmp, invoke):
    from tests.test_pipelines import make_photo_folder

    make_photo_folder(in_tmp / "photos")
    result = invoke("fit", "--dataset", in_tmp / "photos", "--epochs", 1, "--run-dir", "run",
                    "--val-split", 0)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable file(s)" in result.output and "corrupt.png" in result.output
    assert json.loads((in_tmp / "run" / "metrics.json").read_text())["skipped_files"] == 1
    assert (in_tmp / "run" / "labels.txt").read_text().split() == ["hot_dog", "not_hot_dog"]


def bad_folder(root, classes, files=("x.png",), content=b"not an image"):
    for label in classes:
        (root / label).mkdir(parents=True)
        for name in files:
            (root / label / name).write_bytes(content)
    root.mkdir(exist_ok=True)
    return root


BAD_INPUT = [
    (["fit", "--model", "lenet7"], "unknown model 'lenet7'"),
    (["fit", "--dataset", "no_such_dataset_xyz"], "unknown dataset"),
    (["fit", "--dataset", "./missing/folder"], "does not exist"),
    (["fit", "--dataset", "{empty}"], "at least two"),
    (["fit", "--dataset", "{one_class}"], "at least two"),
    (["fit", "--dataset", "{unreadable}"], "no readable images"),
    (["fit", "--dataset", "{text_file}"], "not an .npz"),
    (["fit", "--epochs", "0"], "epochs must be"),
    (["fit", "--batch-size", "-3"], "batch_size must be"),
    (["fit", "--epochs", "many"], "--epochs"),
    (["fit", "--learning-rate", "0"], "learning_rate must be"),
    (["fit", "--val-split", "1.5"], "val_split must be"),
    (["fit", "--image-size", "16"], "image_size must be in [28"),
    (["fit", "--model", "lenet5", "--dataset", "{tiny_npz}"], "too small"),
    (["fit", "--positive-class", "hotdog"], "not a class"),
    (["fit", "--optimizer", "rmsprop"], "--optimizer"),
    (["fit", "--target-accuracy", "1.5"], "target_accuracy must be a number in (0, 1], got 1.5"),
    (["fit", "--target-accuracy", "0"], "target_accuracy must be"),
    (["fit", "--target-accuracy", "high"], "--target-accuracy"),
    (["fit", "--recipe", "slow"], "--recipe"),
    (["fit", "--run-dir", "{not_a_run}"], "not a run directory"),
    (["evaluate"], "no runs found"),
    (["evaluate", "--run-dir", "{empty}"], "holds no run"),
    (["fit", "--no-such-flag"], "no such option"),
    (["no-such-command"], "No such command"),
]


@pytest.mark.parametrize("args, message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(in_tmp, args, message, run_cli):
    """Run as a user runs it (a fresh process, TensorFlow not yet loaded): exactly one
    line in all of the output, exit 2, no file created or changed."""
    import numpy as np

    fixtures = {
        "empty": in_tmp / "empty",
        "one_class": bad_folder(in_tmp / "one_class", ["cats"]),
        "unreadable": bad_folder(in_tmp / "unreadable", ["cats", "dogs"]),
        "text_file": in_tmp / "notes.txt",
        "not_a_run": in_tmp / "not_a_run",
        "tiny_npz": in_tmp / "tiny.npz",
    }
    fixtures["empty"].mkdir()
    fixtures["text_file"].write_text("hello")
    fixtures["not_a_run"].mkdir()
    (fixtures["not_a_run"] / "precious.txt").write_text("keep me")
    np.savez(fixtures["tiny_npz"], x_train=np.zeros((4, 8, 8)), y_train=[0, 1, 0, 1],
             x_test=np.zeros((2, 8, 8)), y_test=[0, 1])
    before = {p.relative_to(in_tmp): p.stat().st_mtime_ns for p in in_tmp.rglob("*")}

    result = run_cli(*[a.format(**fixtures) for a in args], cwd=in_tmp)

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert len(output.strip().splitlines()) == 1, output
    assert message.lower() in result.stderr.lower()
    assert result.stderr.startswith("Error: ") or "Usage" not in output
    assert {p.relative_to(in_tmp): p.stat().st_mtime_ns for p in in_tmp.rglob("*")} == before


@pytest.mark.slow
def test_commands_print_no_native_start_up_chatter(tiny_run, in_tmp, run_cli):
    """TensorFlow/LiteRT/converter lines written from C++ (absl, XNNPACK, fully_quantize)
    never reach the user; the commands' own lines do."""
    chatter = ("absl::InitializeLog", "oneDNN", "cuInit", "cuda drivers", "XNNPACK",
               "fully_quantize", "cpu_feature_guard", "I0000", "E0000", "W0000")
    from PIL import Image

    import numpy as np

    Image.fromarray(np.zeros((28, 28), np.uint8)).save(in_tmp / "black.png")
    export = run_cli("export", "--run-dir", tiny_run, "--quantize", "int8",
                     "--out", in_tmp / "exported", cwd=in_tmp)
    predict = run_cli("predict", in_tmp / "black.png", "--model",
                      in_tmp / "exported" / "model_int8.tflite", cwd=in_tmp)
    fit = run_cli("fit", "--epochs", 1, "--model", "lenet5_mini", "--run-dir", in_tmp / "run",
                  cwd=in_tmp)
    for result in (export, predict, fit):
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert not [word for word in chatter if word in output], output
    assert predict.stdout.startswith(f"{in_tmp / 'black.png'}: ") and predict.stderr == ""
    assert "test accuracy" in fit.stdout and "val_accuracy" in fit.stdout  # Keras' epoch line


def test_debug_shows_the_native_output(in_tmp, run_cli):
    result = run_cli("--debug", "models", cwd=in_tmp)
    assert result.returncode == 0
    assert "lenet5_bn" in result.stdout
    # TensorFlow's start-up lines are passed through under --debug
    assert "oneDNN" in result.stderr or "cuda" in result.stderr.lower(), result.stderr


def test_internal_errors_are_one_line_exit_1_with_traceback_only_under_debug(in_tmp, monkeypatch, invoke):
    import lenet_keras.training

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(lenet_keras.training, "train", broken)
    result = invoke("fit", "--epochs", 1)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Internal error: RuntimeError: disk on fire (rerun with --debug for the traceback)"]
    debug = invoke("--debug", "fit", "--epochs", 1)
    assert debug.exit_code == 1 and "Traceback" in debug.stderr
