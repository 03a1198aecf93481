"""Shared fixtures. Tests run offline; real data comes from Debian's dataset-fashion-mnist.

Two ways to run the CLI: ``invoke`` (click's CliRunner, in this process: fast, for
output and files) and ``run_cli`` (a real ``python -m lenet_keras`` subprocess: what a
user sees, TensorFlow start-up included).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
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
    from lenet_keras.config import TrainConfig
    from lenet_keras.training import train

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    train(TrainConfig(model="lenet5", epochs=2, seed=1), run_dir, log=lambda *_: None)
    return run_dir


@pytest.fixture
def invoke():
    """invoke(*args) -> click Result of the CLI run in this process."""
    from lenet_keras.cli import cli

    return lambda *args: CliRunner().invoke(cli, [str(a) for a in args])


def run_cli_process(*args, cwd=None, timeout=300, env=None):
    """Run ``python -m lenet_keras ARGS`` as a user would; a CompletedProcess with text
    stdout and stderr."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "lenet_keras", *map(str, args)],
                          cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def run_cli():
    return run_cli_process


@pytest.fixture(scope="session")
def micro_export(tmp_path_factory):
    """A lenet5 run trained for 2 epochs on the embedded sample and exported in every
    format with --micro and --web (and --onnx where the [onnx] extra is installed), both
    through the real CLI (shared by test_micro, test_metadata, test_formats and test_web,
    read-only): (run dir, export dir, report, export's stdout)."""
    import json

    from lenet_keras.errors import BadInput
    from lenet_keras.formats import get, require

    try:
        require(get("onnx"))
        onnx = ["--onnx"]
    except BadInput:
        onnx = []
    root = tmp_path_factory.mktemp("micro_export")
    run_dir, out = root / "lenet5-sample-run", root / "export"
    fit = run_cli_process("fit", "--epochs", 2, "--seed", 1, "--run-dir", run_dir, timeout=600)
    assert fit.returncode == 0, fit.stderr
    export = run_cli_process("export", "--run-dir", run_dir, "--out", out, "--tflite",
                             "--micro", "--web", *onnx, timeout=900)
    assert export.returncode == 0, export.stderr
    return run_dir, out, json.loads((out / "report.json").read_text()), export.stdout
