"""Training on real data: the run's metrics are what the saved model does on raw pixels."""

import json

import numpy as np
import pytest

from lenet_keras.sources import load_idx_folder
from lenet_keras.runs import load_model
from lenet_keras.config import TrainConfig
from lenet_keras.training import train


@pytest.mark.slow
def test_lenet5_learns_real_fashion_mnist_in_one_epoch(fashion_mnist_dir, tmp_path):
    config = TrainConfig(model="lenet5", dataset=str(fashion_mnist_dir), epochs=1)
    metrics = train(config, tmp_path / "run", log=lambda *_: None)
    assert metrics["test_accuracy"] > 0.75  # chance is 0.10
    assert metrics["num_train"] == 54_000 and metrics["num_test"] == 10_000

    # Feed the raw IDX test pixels to model.keras: no preprocessing outside the model.
    test = load_idx_folder(fashion_mnist_dir)
    model = load_model(tmp_path / "run" / "model.keras")
    predictions = model.predict(test.x_test.astype("float32"), batch_size=512, verbose=0)
    accuracy = float(np.mean(predictions.argmax(axis=1) == test.y_test))
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]


@pytest.mark.slow
def test_fit_cli_records_the_recipe_flags_in_config_json(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(root / "cli.py"), "fit", "--model", "mobilenet_mini_050",
         "--epochs", "2", "--run-dir", str(run_dir), "--label-smoothing", "0.2",
         "--weight-decay", "0.01", "--warmup-epochs", "1", "--augment",
         "--model-arg", "width=0.75"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["label_smoothing"], config["weight_decay"], config["warmup_epochs"],
            config["augment"]) == (0.2, 0.01, 1, "shift")
    # --model-arg goes on top of the spec's width=0.5, into config.json and the model.
    assert config["model_args"] == {"width": 0.75}
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    from lenet_keras.models import build_model

    assert metrics["params"] == build_model("mobilenet_mini", (28, 28, 1), 10, width=0.75).count_params()


def test_warmup_rises_linearly_then_cosine_decays():
    from lenet_keras.training import learning_rate_schedule

    config = TrainConfig(epochs=4, warmup_epochs=1, learning_rate=1e-2)
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-3) and rates[2] == pytest.approx(1e-2)
    assert rates[2] > rates[3] > rates[4] >= 0.0


def test_weight_decay_selects_adamw():
    from lenet_keras.training import _optimizer

    assert type(_optimizer(TrainConfig(weight_decay=0.05), 10)).__name__ == "AdamW"
    assert type(_optimizer(TrainConfig(), 10)).__name__ == "Adam"


@pytest.mark.slow
def test_target_accuracy_stops_the_run_at_the_first_epoch_that_reaches_it(tmp_path, run_cli):
    """`fit --recipe fast` with a target any model reaches: one epoch of the three runs,
    the recipe is printed and recorded, metrics.json says where it stopped."""
    run_dir = tmp_path / "run"
    result = run_cli("fit", "--recipe", "fast", "--epochs", 3, "--target-accuracy", 0.05,
                     "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    recipe = [line for line in result.stdout.splitlines() if line.startswith("recipe: ")]
    assert recipe and recipe[0].startswith(
        "recipe: fast (model=lenet5_bn, model_args={'widths': [8, 16], 'dropout': 0.0, "
        "'pool_first': True}, epochs=3, "), result.stdout
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["recipe"], config["model"], config["target_accuracy"]) == ("fast", "lenet5_bn", 0.05)
    assert config["model_args"] == {"widths": [8, 16], "dropout": 0.0, "pool_first": True}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["stopped_at_target"], metrics["target_epoch"]) == (1, True, 1)
    assert len((run_dir / "history.csv").read_text().splitlines()) == 2  # header + epoch 1
    assert "after 1 epochs" in result.stdout
    assert "validation accuracy reached 0.05 in epoch 1: stopped" in result.stdout.splitlines()
    assert metrics["train_seconds"] > 0 and (run_dir / "model.keras").is_file()


def test_a_run_without_a_target_trains_every_epoch_and_says_so(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert (metrics["target_accuracy"], metrics["stopped_at_target"], metrics["target_epoch"]) \
        == (None, False, None)
