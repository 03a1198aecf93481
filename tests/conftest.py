"""Shared fixtures. Tests run offline; real data comes from Debian's dataset-fashion-mnist."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def fashion_mnist_dir():
    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("apt-get install -y dataset-fashion-mnist for the real-data tests")
    return FASHION_MNIST_DIR


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty temporary directory (so runs/ and exports/ land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A real run: lenet5 trained for 2 epochs on the embedded sample (shared, read-only)."""
    from lenet_keras.train import TrainConfig, train

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    train(TrainConfig(model="lenet5", epochs=2, seed=1), run_dir, log=lambda *_: None)
    return run_dir
