"""Crash and resume, NaN losses, locked and unfinished run directories, safe loading."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import lenet_keras.training as train_module
from lenet_keras import runs
from lenet_keras.errors import BadInput
from lenet_keras.runs import load_model, read_history
from lenet_keras.config import TrainConfig
from lenet_keras.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_fit_killed_with_sigkill_resumes_from_the_last_completed_epoch(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, os.path.join(ROOT, "cli.py"), "fit", "--model", "lenet5_mini",
               "--epochs", "5", "--run-dir", str(run_dir)]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while len(read_history(run_dir)) < 2:
        assert process.poll() is None, "fit ended before it could be killed"
        assert time.time() < deadline, "no epoch logged in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = len(read_history(run_dir))
    assert 2 <= killed_after < 5 and not (run_dir / "metrics.json").exists()

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    # The optimizer state came back: the cosine schedule continued to zero instead of
    # restarting at the peak learning rate.
    lrs = [row["lr"] for row in history]
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(0, abs=1e-7)
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 5
    assert load_model(run_dir / "model.keras").count_params() > 0


@pytest.mark.slow
def test_nan_loss_stops_the_run_and_keeps_the_best_checkpoint(tmp_path, monkeypatch):
    def diverging_optimizer(config, steps_per_epoch):
        # A sane first epoch, then a learning rate that blows the weights up.
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([steps_per_epoch], [1e-3, 1e12])
        return keras.optimizers.Adam(schedule)

    monkeypatch.setattr(train_module, "_optimizer", diverging_optimizer)
    messages = []
    metrics = train(TrainConfig(model="lenet5_mini", epochs=4), tmp_path / "run", log=messages.append)

    history = read_history(tmp_path / "run")
    assert len(history) == 2 and math.isnan(history[-1]["loss"])
    assert metrics["stopped_on_nan"] and metrics["best_epoch"] == 1
    assert any("NaN" in m and "epoch 1" in m for m in messages)
    # The kept model is the sane epoch-1 one, not the diverged weights.
    assert metrics["test_accuracy"] > 0.5 and history[0]["val_accuracy"] > 0.5


def test_a_second_fit_on_a_locked_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with runs.RunLock(run_dir):
        with pytest.raises(BadInput, match="another fit"):
            with runs.RunLock(run_dir):
                pass
    with runs.RunLock(run_dir):  # released when the holder is gone
        pass


def test_resuming_with_other_options_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(TrainConfig(epochs=5).resolved().to_json())
    with pytest.raises(BadInput, match="other options \\(epochs\\)"):
        train(TrainConfig(epochs=6), run_dir)


def test_models_with_python_code_need_unsafe(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(BadInput, match="--unsafe"):
        load_model(tmp_path / "lambda.keras")
    model = load_model(tmp_path / "lambda.keras", safe_mode=False)
    np.testing.assert_allclose(model.predict(np.ones((1, 4)), verbose=0), 2.0)


def test_corrupt_or_missing_model_files_are_bad_input(tmp_path):
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(BadInput, match="cannot load"):
        load_model(tmp_path / "corrupt.keras")
    with pytest.raises(BadInput, match="does not exist"):
        load_model(tmp_path / "missing.keras")


def test_cli_refuses_unsafe_models_in_one_line(tmp_path, invoke):
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(lambda x: x[:, :2, 0, 0])(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    (tmp_path / "img.png").write_bytes(b"unused")
    result = invoke("predict", tmp_path / "img.png", "--model", tmp_path / "lambda.keras")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--unsafe" in result.stderr
