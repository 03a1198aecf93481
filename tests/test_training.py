"""Training on real data: the run's metrics are what the saved model does on raw pixels."""

import json

import numpy as np
import pytest

from lenet_keras.data import load_idx_folder
from lenet_keras.runs import load_model
from lenet_keras.training import TrainConfig, train


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


def test_config_round_trips_through_json():
    config = TrainConfig(model="mlp", dataset="cifar10", color="grayscale", positive_class="cat")
    assert TrainConfig.from_json(config.to_json()) == config
