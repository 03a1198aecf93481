"""fit on every Keras backend, on several devices and processes, in mixed precision.

Backends other than the test process's own (TensorFlow) run in subprocesses: Keras picks
its backend once, at import. JAX tests skip where jax is missing, torch tests where torch
is. ``LENET_KERAS_CPU_DEVICES=2`` splits this CPU into two devices.
"""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT, run_cli_process

requires_jax = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None, reason="pip install jax")
requires_torch = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torch") is None, reason="pip install torch")


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    """320 training and 64 test images of the embedded sample, as an .npz."""
    from lenet_keras.sources import SAMPLE_PATH

    sample = np.load(SAMPLE_PATH)
    path = tmp_path_factory.mktemp("data") / "small.npz"
    np.savez(path, x_train=sample["x_train"][:320], y_train=sample["y_train"][:320],
             x_test=sample["x_test"][:64], y_test=sample["y_test"][:64],
             class_names=sample["class_names"])
    return path


def fit_args(data, run_dir, *extra):
    return ["fit", "--dataset", data, "--epochs", "1", "--batch-size", "32",
            "--run-dir", run_dir, *extra]


def metrics_of(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def weights_of(run_dir):
    from lenet_keras.runs import load_model

    return load_model(run_dir / "model.keras").get_weights()


# ---------------------------------------------------------------------------------------
# Every registry model on every backend
# ---------------------------------------------------------------------------------------

ONE_STEP = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    from lenet_keras.quiet import import_keras
    keras = import_keras()
    from lenet_keras.sources import SAMPLE_PATH
    from lenet_keras.models import build_model
    from lenet_keras.registry import list_models
    sample = np.load(SAMPLE_PATH)
    x = sample["x_train"][:32].reshape(-1, 28, 28, 1).astype("float32")
    y = sample["y_train"][:32].astype("int64")
    result = {"backend": keras.backend.backend()}
    for name in list_models():
        keras.utils.set_random_seed(0)
        model = build_model(name, (28, 28, 1), 10)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        loss = model.train_on_batch(x, y)
        result[name] = [float(loss), list(model.output_shape)]
    print("@@" + json.dumps(result))
""")


def one_step_per_model(backend):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", ONE_STEP], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("@@"))
    return json.loads(line[2:])


@pytest.fixture(scope="module")
def jax_steps():
    return one_step_per_model("jax")


@pytest.fixture(scope="module")
def torch_steps():
    return one_step_per_model("torch")


def _registry():
    from lenet_keras.registry import list_models

    return list_models()


@pytest.mark.slow
@requires_jax
@pytest.mark.parametrize("name", _registry())
def test_every_model_trains_a_step_on_jax(jax_steps, name):
    assert jax_steps["backend"] == "jax"
    loss, shape = jax_steps[name]
    assert math.isfinite(loss) and loss > 0
    assert shape == [None, 10]


@pytest.mark.slow
@requires_torch
@pytest.mark.parametrize("name", _registry())
def test_every_model_trains_a_step_on_torch(torch_steps, name):
    assert torch_steps["backend"] == "torch"
    loss, shape = torch_steps[name]
    assert math.isfinite(loss) and loss > 0
    assert shape == [None, 10]


# ---------------------------------------------------------------------------------------
# The CLI: what fit trains on, and bad combinations
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@requires_jax
def test_jax_fit_writes_the_same_run_directory(small_npz, tmp_path):
    run_dir = tmp_path / "run"
    done = run_cli_process(*fit_args(small_npz, run_dir, "--backend", "jax"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training on CPU, " in done.stdout and "(jax, float32)" in done.stdout
    metrics = metrics_of(run_dir)
    assert (metrics["backend"], metrics["devices"], metrics["replicas"], metrics["precision"]) == (
        "jax", ["CPU"], 1, "float32")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["backend"] == "jax" and config["jit_compile"] is True
    for name in ("model.keras", "history.csv", "labels.txt", "config.json", "tensorboard"):
        assert (run_dir / name).exists(), name
    # model.keras loads in this (TensorFlow) process and gives the recorded accuracy.
    from lenet_keras.pipelines import load_dataset
    from lenet_keras.training import evaluate_model
    from lenet_keras.runs import load_model

    test = load_dataset(str(small_npz), batch_size=32).test
    _, accuracy = evaluate_model(load_model(run_dir / "model.keras"), test)
    assert accuracy == pytest.approx(metrics["test_accuracy"], abs=1e-6)


@requires_torch
def test_torch_fit_runs_one_step_per_call_and_flips_inside_the_model(small_npz, tmp_path):
    """Keras' torch trainer refuses steps_per_execution > 1 (the config's default is 64);
    the augmenter runs in the model there too, and model.keras is the network alone."""
    run_dir = tmp_path / "run"
    done = run_cli_process(*fit_args(small_npz, run_dir, "--backend", "torch", "--augment", "flip"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert metrics_of(run_dir)["backend"] == "torch"
    from lenet_keras.runs import load_model

    names = [layer.name for layer in load_model(run_dir / "model.keras").layers]
    assert names[0] == "image" and "augment" not in names


@pytest.mark.parametrize("args, message", [
    (["--backend", "jax", "--distribute", "mirrored"],
     "Error: --distribute mirrored runs on the tensorflow backend; pass --backend tensorflow (got jax)"),
    (["--distribute", "data-parallel"],
     "Error: --distribute data-parallel runs on the jax backend; pass --backend jax (got tensorflow)"),
])
def test_distribution_needs_its_backend(run_cli, tmp_path, args, message):
    done = run_cli(*fit_args("sample", tmp_path / "run", *args), env={"KERAS_BACKEND": ""})
    assert done.returncode == 2
    assert done.stderr.strip() == message
    assert not (tmp_path / "run").exists()


def test_bad_cpu_device_count_is_one_line(run_cli, tmp_path):
    done = run_cli(*fit_args("sample", tmp_path / "run"), env={"LENET_KERAS_CPU_DEVICES": "two"})
    assert done.returncode == 2
    assert done.stderr.strip() == ("Error: LENET_KERAS_CPU_DEVICES must be a number of devices "
                                   "from 1 to 64, got 'two'")


def test_backend_cannot_change_once_keras_runs(tmp_path):
    from lenet_keras.errors import BadInput
    from lenet_keras.quiet import import_keras
    from lenet_keras.config import TrainConfig
    from lenet_keras.training import train

    assert import_keras().backend.backend() == "tensorflow"
    with pytest.raises(BadInput, match="keras already runs on the tensorflow backend in this "
                                       "process; set KERAS_BACKEND=jax before"):
        train(TrainConfig(backend="jax", epochs=1), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_batch_must_split_over_replicas():
    from lenet_keras.devices import Placement

    assert Placement("jax", "data-parallel", devices=["CPU", "CPU"], replicas=2).summary() == (
        "training on 2 x CPU (jax, float32), data-parallel: 2 replicas")
    assert Placement("jax", devices=["NVIDIA H100 80GB HBM3"]).summary() == (
        "training on 1 x NVIDIA H100 80GB HBM3 (jax, float32)")
    assert Placement("jax", "data-parallel", "mixed_bfloat16", ["NVIDIA H100"] * 4, 4,
                     processes=2).summary() == (
        "training on 4 x NVIDIA H100 in 2 processes (jax, mixed_bfloat16), data-parallel: 4 replicas")


# ---------------------------------------------------------------------------------------
# Two devices out of one CPU; two processes on 127.0.0.1
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend, distribute", [
    ("tensorflow", "mirrored"),
    pytest.param("jax", "data-parallel", marks=requires_jax),
])
def test_two_cpu_devices_make_two_replicas(small_npz, tmp_path, backend, distribute):
    run_dir = tmp_path / "run"
    done = run_cli_process(*fit_args(small_npz, run_dir, "--backend", backend,
                                     "--distribute", distribute),
                           env={"LENET_KERAS_CPU_DEVICES": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"training on 2 x CPU ({backend}, float32), {distribute}: 2 replicas" in done.stdout
    metrics = metrics_of(run_dir)
    assert (metrics["replicas"], metrics["devices"], metrics["distribute"]) == (
        2, ["CPU", "CPU"], distribute)
    assert math.isfinite(metrics["test_loss"])
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "nan" not in history[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fit_processes(data, run_dirs, count=2, extra=()):
    """``count`` real `fit --distribute data-parallel` processes joined on 127.0.0.1."""
    address = f"127.0.0.1:{free_port()}"
    processes = []
    for index, run_dir in enumerate(run_dirs):
        env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
               "KERAS_DISTRIBUTION_NUM_PROCESSES": str(count),
               "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}
        command = [sys.executable, "-m", "lenet_keras", *fit_args(
            data, run_dir, "--backend", "jax", "--distribute", "data-parallel", *extra)]
        processes.append(subprocess.Popen(
            command, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        try:
            out, err = process.communicate(timeout=600)
        finally:
            process.kill()
        results.append((process.returncode, out, err))
    return results


@pytest.mark.slow
@requires_jax
def test_two_processes_end_with_identical_weights(small_npz, tmp_path):
    run_dirs = [tmp_path / "process0", tmp_path / "process1"]  # each its own --run-dir
    results = fit_processes(small_npz, run_dirs)
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "training on 2 x CPU in 2 processes (jax, float32), data-parallel: 2 replicas" in out
    first, second = (weights_of(d) for d in run_dirs)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    for run_dir in run_dirs:
        metrics = metrics_of(run_dir)
        assert (metrics["replicas"], metrics["processes"]) == (2, 2)
    assert metrics_of(run_dirs[0])["test_accuracy"] == metrics_of(run_dirs[1])["test_accuracy"]


@pytest.mark.slow
@requires_jax
def test_only_process_0_writes_a_shared_run_dir(small_npz, tmp_path):
    run_dir = tmp_path / "shared"
    (code0, out0, err0), (code1, out1, err1) = fit_processes(small_npz, [run_dir, run_dir])
    assert code0 == 0, err0[-3000:]
    assert code1 == 0, err1[-3000:]
    assert f"-> {run_dir}" in out0.splitlines()[-1]
    assert out1.splitlines()[-1].startswith("process 1 done (")
    assert out1.splitlines()[-1].endswith("; process 0 writes the run")
    assert metrics_of(run_dir)["processes"] == 2
    assert not (run_dir / "backup").exists()


# ---------------------------------------------------------------------------------------
# JAX on a host without TensorFlow
# ---------------------------------------------------------------------------------------


@pytest.fixture
def no_tensorflow(tmp_path):
    """A PYTHONPATH entry whose sitecustomize makes `import tensorflow` fail."""
    shim = tmp_path / "no_tensorflow"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(textwrap.dedent("""
        import importlib.machinery

        # As on a GPU host with JAX only: TensorFlow is not found on sys.path.
        HIDDEN = ("tensorflow", "tensorflow_datasets", "tf_keras")
        _find_spec = importlib.machinery.PathFinder.find_spec

        def _find_spec_without_tensorflow(cls, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                return None
            return _find_spec(name, path, target)

        importlib.machinery.PathFinder.find_spec = classmethod(_find_spec_without_tensorflow)
    """))
    return {"PYTHONPATH": f"{shim}:{ROOT}"}


@pytest.mark.slow
@requires_jax
def test_jax_trains_without_tensorflow_then_exports_with_it(small_npz, tmp_path, no_tensorflow):
    run_dir = tmp_path / "run"
    # --image-size 32 also resizes without TensorFlow (PIL).
    done = run_cli_process(*fit_args(small_npz, run_dir, "--backend", "jax", "--augment",
                                     "--image-size", "32"), env=no_tensorflow)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no TensorBoard logs: they need TensorFlow (pip install tensorflow)" in done.stdout
    assert metrics_of(run_dir)["backend"] == "jax"
    assert not (run_dir / "tensorboard").exists()

    # The TensorFlow-only commands say so in one line there...
    refused = run_cli_process("export", "--run-dir", run_dir, env=no_tensorflow)
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("Error: export needs TensorFlow, which is not installed")
    tfds = run_cli_process("fit", "--dataset", "mnist", "--backend", "jax", env=no_tensorflow)
    assert tfds.returncode == 2
    assert tfds.stderr.strip().startswith("Error: the TFDS dataset 'mnist' needs TensorFlow")
    tf_backend = run_cli_process("fit", "--backend", "tensorflow", env=no_tensorflow)
    assert tf_backend.returncode == 2
    assert tf_backend.stderr.strip() == (
        "Error: the tensorflow backend needs tensorflow, which is not installed here: "
        "pip install tensorflow, or pass --backend jax")

    # ...and the run exports in a TensorFlow process.
    exported = run_cli_process("export", "--run-dir", run_dir, "--out", tmp_path / "export",
                               "--quantize", "float32")
    assert exported.returncode == 0, exported.stderr[-3000:]
    report = json.loads((tmp_path / "export" / "report.json").read_text())
    assert (tmp_path / "export" / "model_float32.tflite").is_file()
    assert report  # verified formats are listed in the report


# ---------------------------------------------------------------------------------------
# Mixed precision
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_run_saves_a_float32_model(small_npz, tmp_path, precision):
    import keras

    from lenet_keras.config import TrainConfig
    from lenet_keras.training import train

    run_dir = tmp_path / "run"
    lines = []
    metrics = train(TrainConfig(model="lenet5_bn", dataset=str(small_npz), epochs=1,
                                batch_size=32, precision=precision), run_dir, log=lines.append)
    assert "training on CPU, " in lines[1] and lines[1].endswith(f"(tensorflow, {precision})")
    assert metrics["precision"] == precision and math.isfinite(metrics["test_loss"])
    assert keras.config.dtype_policy().name == "float32"  # the process is back to float32
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert all(w.dtype == "float32" for w in model.get_weights())


@pytest.mark.slow
def test_bfloat16_run_exports_float32_and_int8_tflite(small_npz, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from lenet_keras.export import export_run
    from lenet_keras.config import TrainConfig
    from lenet_keras.training import train

    run_dir = tmp_path / "run"
    train(TrainConfig(dataset=str(small_npz), epochs=1, batch_size=32,
                      precision="mixed_bfloat16"), run_dir, log=lambda *_: None)
    export_run(run_dir, tmp_path / "export", formats=("float32", "int8"),
               calibration_samples=32, latency_number=5, progress=False, log=lambda *_: None)
    expected = {"float32": np.float32, "int8": np.int8}
    for name, dtype in expected.items():
        interpreter = Interpreter(model_path=str(tmp_path / "export" / f"model_{name}.tflite"))
        assert interpreter.get_input_details()[0]["dtype"] == dtype
        assert interpreter.get_output_details()[0]["dtype"] == dtype
        kinds = {d["dtype"] for d in interpreter.get_tensor_details()}
        assert not any("bfloat16" in str(k) or k == np.float16 for k in kinds), kinds


# ---------------------------------------------------------------------------------------
# The feeder: shuffling, batching, shards
# ---------------------------------------------------------------------------------------


def feeder(n=100, batch=16, **options):
    from lenet_keras.feed import ArrayBatches

    x = np.arange(n, dtype=np.uint8).reshape(n, 1, 1, 1)
    return ArrayBatches(x, np.arange(n), batch, **options)


def epoch_labels(batches):
    return [batches[i][1].tolist() for i in range(len(batches))]


def test_feeder_reshuffles_every_epoch_from_the_seed():
    first = feeder(training=True, seed=3)
    again = feeder(training=True, seed=3)
    assert len(first) == 6  # 100 // 16 full batches; the ragged rest is dropped
    epoch1 = epoch_labels(first)
    assert epoch1 == epoch_labels(again)  # same seed, same batches
    first.on_epoch_end()
    epoch2 = epoch_labels(first)
    assert sorted(sum(epoch1, [])) != sorted(sum(epoch2, []))  # other images dropped...
    assert epoch1 != epoch2  # ...and another order
    assert all(len(b) == 16 for b in epoch1 + epoch2)
    images, labels = first[0]
    assert images.dtype == np.float32 and images.shape == (16, 1, 1, 1)
    assert images[:, 0, 0, 0].tolist() == labels.tolist()


def test_feeder_evaluates_every_image_in_order():
    batches = feeder(training=False)
    assert sum(epoch_labels(batches), []) == list(range(100))


def test_feeder_shards_split_every_global_batch():
    whole = feeder(training=True, seed=5)
    shards = [feeder(training=True, seed=5, shard=(i, 2), multiple=2) for i in range(2)]
    for index in range(len(whole)):
        parts = [s[index][1] for s in shards]
        assert len(parts[0]) == len(parts[1]) == 8
        assert sorted(np.concatenate(parts).tolist()) == sorted(whole[index][1].tolist())
    # evaluation: the ragged last batch (100 = 6 x 16 + 4) is cut to a multiple of 3
    assert feeder(batch=16, multiple=3)[6][1].tolist() == [96, 97, 98]


@requires_jax
def test_feeder_on_the_device_gives_the_host_batches_and_big_data_stays_on_the_host(monkeypatch):
    from lenet_keras import feed
    from lenet_keras.pipelines import PreparedArrays

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (100, 4, 4, 1), np.uint8), rng.integers(0, 10, 100)
    prepared = PreparedArrays("t", x[:80], y[:80], x[80:], y[80:], x[:10], y[:10], list("0123456789"))

    def epochs(bundle):
        batches = []
        for epoch in range(2):
            bundle.set_epoch(epoch)
            batches += [bundle.train[i] for i in range(len(bundle.train))]
        return batches + [bundle.val[i] for i in range(len(bundle.val))]

    host = epochs(feed.feed_bundle(prepared, batch_size=16, seed=3))
    device = epochs(feed.feed_bundle(prepared, batch_size=16, seed=3, on_device=True))
    assert all(type(images).__module__.startswith("jax") for images, _ in device)
    for (hx, hy), (dx, dy) in zip(host, device, strict=True):
        np.testing.assert_array_equal(hx, np.asarray(dx))
        np.testing.assert_array_equal(hy, np.asarray(dy))
    monkeypatch.setattr(feed, "DEVICE_DATA_LIMIT_BYTES", x.nbytes - 1)
    big = feed.feed_bundle(prepared, batch_size=16, seed=3, on_device=True)
    assert isinstance(big.train[0][0], np.ndarray)


def test_resize_without_tensorflow_is_close_to_tensorflow():
    from lenet_keras.sources import SAMPLE_PATH, resize_images, _resize_with_pil

    x = np.load(SAMPLE_PATH)["x_train"][:200].reshape(-1, 28, 28, 1)
    with_tf, with_pil = resize_images(x, 32).astype(int), _resize_with_pil(x, 32).astype(int)
    assert with_pil.shape == with_tf.shape == (200, 32, 32, 1)
    assert np.abs(with_tf - with_pil).max() <= 1
    assert np.abs(with_tf - with_pil).mean() < 0.2


# ---------------------------------------------------------------------------------------
# One augmentation for both feeders (the JAX feeder once trained "none" and "flip" with
# random shifts), run inside the compiled training step on JAX, and a TensorFlow that
# fails to import
# ---------------------------------------------------------------------------------------

JAX_BATCHES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lenet_keras as lk
    from lenet_keras.config import TrainConfig
    from lenet_keras.training import build_for_config
    source = np.load(sys.argv[1])
    x_train = source["x_train"].reshape(-1, 28, 28, 1)

    def from_source(images):
        return bool(all((x_train == image).all(axis=(1, 2, 3)).any()
                        for image in np.asarray(images).astype(np.uint8)))

    result = {}
    for kind in ("none", "shift", "flip"):
        bundle = lk.load_dataset(sys.argv[1], augment=kind, val_split=0, batch_size=32, seed=3)
        batches = [bundle.train[i][0] for i in range(len(bundle.train))]
        images = np.concatenate(batches)
        model = build_for_config(TrainConfig(augment=kind, batch_size=32), bundle)
        # What the training step feeds the network: the wrapper's augmenter output.
        seen = (bundle.augment(images, training=True) if bundle.augment is not None
                else images)
        result[kind] = {
            "type": type(bundle.train).__name__,
            "on_device": type(batches[0]).__module__.startswith("jax"),
            "batches_from_source": from_source(images),
            "augmenter_in_model": [l.name for l in model.layers].count("augment"),
            "weights": len(model.get_weights()),
            "seen_from_source": from_source(seen),
            "integral": bool((np.asarray(seen) == np.round(np.asarray(seen))).all()),
            "sum": float(np.asarray(seen).sum()),
            "inference_unchanged": bool(bundle.augment is None or np.array_equal(
                np.asarray(bundle.augment(images, training=False)), images)),
        }
    print("@@" + json.dumps(result))
""")


@requires_jax
def test_jax_feeder_augments_as_asked_and_none_keeps_the_source_pixels(small_npz):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", JAX_BATCHES, str(small_npz)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("@@"))[2:])
    assert {r["type"] for r in result.values()} == {"ArrayBatches"}
    # The batches live on the JAX device and are the source pixels whatever --augment says:
    # the model's training step augments them, not the feeder.
    assert all(r["on_device"] for r in result.values())
    assert all(r["batches_from_source"] for r in result.values())
    assert [result[k]["augmenter_in_model"] for k in ("none", "shift", "flip")] == [0, 1, 1]
    assert len({r["weights"] for r in result.values()}) == 1  # the wrapper adds no weights
    assert result["none"]["seen_from_source"] and result["none"]["integral"]
    # A flip moves pixels but keeps every value; a shift/zoom interpolates and pads.
    assert not result["flip"]["seen_from_source"]
    assert result["flip"]["sum"] == result["none"]["sum"]
    assert not result["shift"]["integral"]
    assert all(r["inference_unchanged"] for r in result.values())


JAX_RESUME = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    import keras
    from lenet_keras.config import TrainConfig
    from lenet_keras.runs import load_model, read_history
    from lenet_keras.training import train

    class Crash(keras.callbacks.Callback):  # after the run's own callbacks saved epoch 2
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated crash")

    data, out = sys.argv[1], Path(sys.argv[2])
    config = TrainConfig(dataset=data, epochs=3, batch_size=32, augment="flip", seed=3,
                         backend="jax")
    train(config, out / "straight")
    try:
        train(config, out / "resumed", callbacks=[Crash()])
    except RuntimeError:
        pass
    crashed = [row["epoch"] for row in read_history(out / "resumed")]
    train(config, out / "resumed")
    straight, resumed = (load_model(out / name / "model.keras") for name in ("straight", "resumed"))
    print("@@" + json.dumps({
        "crashed_after": crashed,
        "same_weights": all(np.array_equal(a, b) for a, b in
                            zip(straight.get_weights(), resumed.get_weights())),
        "same_history": read_history(out / "straight") == read_history(out / "resumed"),
        "layers": [layer.name for layer in straight.layers],
    }))
""")


@requires_jax
def test_jax_run_with_flips_resumes_to_the_weights_of_an_uninterrupted_run(small_npz, tmp_path):
    """The augmenter runs inside the jitted step and restarts its random stream at
    (seed, epoch): a crashed and resumed JAX run ends bit-identical to a straight one,
    and model.keras holds the network without augmentation layers."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", JAX_RESUME, str(small_npz), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("@@"))[2:])
    assert result["crashed_after"] == [1, 2]
    assert result["same_weights"] and result["same_history"]
    assert result["layers"][0] == "image" and not any(
        name == "augment" or name.startswith("random_") for name in result["layers"])


@pytest.fixture
def broken_tensorflow(tmp_path):
    """PYTHONPATH where ``import tensorflow`` raises, as on a host whose TensorFlow build
    does not match its CUDA."""
    shim = tmp_path / "broken_tf" / "tensorflow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        'raise ImportError("libcudart.so.12: cannot open shared object file (simulated)")\n')
    return {"PYTHONPATH": f"{shim.parent}:{ROOT}"}


@pytest.mark.slow
@requires_jax
def test_jax_fit_histories_differ_by_augmentation_and_survive_a_broken_tensorflow(
        small_npz, tmp_path, broken_tensorflow):
    losses = {}
    for kind in ("none", "shift", "flip"):
        run_dir = tmp_path / kind
        env = broken_tensorflow if kind == "none" else None
        done = run_cli_process(*fit_args(small_npz, run_dir, "--backend", "jax", "--seed", "3",
                                         "--augment", kind), env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        history = (run_dir / "history.csv").read_text().splitlines()
        losses[kind] = history[1].split(",")[1]  # epoch 1's training loss
    assert len(set(losses.values())) == 3, losses
    assert not (tmp_path / "none" / "tensorboard").exists()  # TensorFlow counted as absent


JAX_FUSED = textwrap.dedent("""
    import json, sys
    from dataclasses import replace
    import numpy as np
    from lenet_keras import devices, fused_steps, training
    from lenet_keras.config import TrainConfig
    from lenet_keras.pipelines import build_batches, read_source
    from lenet_keras.quiet import import_keras

    devices.select_backend("jax")
    keras = import_keras()
    result = {}
    for augment in ("none", "flip"):
        config = TrainConfig(model="lenet5_bn", dataset=sys.argv[1], batch_size=32,
                             steps_per_execution=4, augment=augment,
                             precision="float32").check().resolved()
        weights = {}
        for fused in (False, True):
            bundle = build_batches(config, read_source(config), devices.place(config))
            keras.utils.set_random_seed(5)
            model = training.build_for_config(config, bundle)
            if fused:
                fused_steps.fuse_steps(model)
            calls = []
            model.make_train_function()
            step = model.train_function
            model.train_function = lambda state, it: calls.append(1) or step(state, it)
            model.fit(bundle.train, epochs=2, verbose=0)
            weights[fused] = np.concatenate([np.ravel(w) for w in model.get_weights()])
            result[f"{augment} {fused} kind"] = step.__qualname__.split(".")[0]
            result[f"{augment} {fused} calls"] = len(calls)
            result[f"{augment} {fused} steps"] = len(bundle.train)
        result[f"{augment} max diff"] = float(np.abs(weights[True] - weights[False]).max())
        result[f"{augment} weights"] = weights[True].tolist()
    result["flip vs none"] = float(np.abs(np.subtract(result.pop("flip weights"),
                                                      result.pop("none weights"))).max())
    print("@@" + json.dumps(result))
""")


@requires_jax
def test_jax_fused_scan_trains_to_the_weights_of_keras_own_loop(small_npz):
    """fused_steps runs each execution's steps in one lax.scan: the same weights as
    Keras' loop (a net with batch-norm statistics, with and without flips), one call
    per execution, flips still applied inside the scan."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", JAX_FUSED, str(small_npz)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("@@"))[2:])
    for augment in ("none", "flip"):
        assert result[f"{augment} True kind"] == "fuse_steps"
        assert result[f"{augment} False kind"] != "fuse_steps"  # CPU: Keras' loop by default
        assert result[f"{augment} True steps"] == 9  # 288 training images / 32
        # 2 epochs x (4 + 4 + 1 steps): three calls an epoch, either way
        assert result[f"{augment} True calls"] == result[f"{augment} False calls"] == 6
        # float round-off only (XLA orders a scanned step's sums its own way): 3e-4 and
        # 1e-5 measured, against 1.07 between the runs with and without flips
        assert result[f"{augment} max diff"] < 2e-3, result
    assert result["flip vs none"] > 0.1


@requires_jax
def test_jax_fused_ab_runs_from_any_folder_and_refuses_zero_epochs(tmp_path):
    """benchmarks/jax_fused_ab.py's default data was a path relative to the checkout (a
    traceback from any other folder), and --epochs 0 divided by zero after the run."""
    script = [sys.executable, str(ROOT / "benchmarks" / "jax_fused_ab.py"), "--variant", "keras loop"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run([*script, "--epochs", "1"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| keras loop |" in done.stdout and "1.00x" in done.stdout
    refused = subprocess.run([*script, "--epochs", "0"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].endswith(
        "argument --epochs: must be a whole number >= 1, got '0'")
