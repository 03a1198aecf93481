"""Hostile input, round three (issue 23): the 22 breaks found by an attacker, each as a
real ``python -m lenet_keras`` process (or an API call where the break is in the API),
numbered as in the issue. Fast tests refuse before TensorFlow loads where they can;
those that train, export or serve a model are marked slow.
"""

import asyncio
import errno
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet_keras.errors import BadInput
from tests.conftest import ROOT
from tests.test_hostile import snapshot
from tests.test_serve import Server, multipart, request


def one_error_line(result, fragment):
    """The process failed as bad input: exit 2, one line ``Error: ...`` holding fragment."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2, "\n".join(lines[-20:])
    assert len(lines) == 1 and lines[0].startswith("Error: "), "\n".join(lines[-20:])
    assert fragment.lower() in lines[0].lower(), lines[0]
    return lines[0]


def png_bytes(array=None, fmt="PNG", **save):
    array = np.random.default_rng(0).integers(0, 256, (28, 28), np.uint8) if array is None else array
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save)
    return buffer.getvalue()


def ico_bomb():
    """An ICO holding a 13000x13000 PNG: 0.2 MB on disk, 169 Mpixels once decoded."""
    buffer = io.BytesIO()
    Image.new("L", (13000, 13000)).save(buffer, "PNG")
    data = buffer.getvalue()
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(data), 22) + data


def foreign_image(fmt):
    """SPIDER / DDS / TGA content: formats no decoder here opens (any file name)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3 if fmt != "SPIDER" else 1), np.uint8).squeeze()).save(
        buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def no_tf(tmp_path):
    """PYTHONPATH under which ``import tensorflow`` fails: refused before TensorFlow."""
    (tmp_path / "guard" / "tensorflow").mkdir(parents=True)
    (tmp_path / "guard" / "tensorflow" / "__init__.py").write_text(
        'raise ImportError("TensorFlow was imported before the input was refused")\n')
    return {"PYTHONPATH": f"{tmp_path / 'guard'}{os.pathsep}{ROOT}"}


def config_json(**changes):
    from lenet_keras.config import TrainConfig

    return json.dumps({**json.loads(TrainConfig(epochs=1).to_json()), **changes})


# ---------------------------------------------------------------------------------------
# Data loss (1-3)
# ---------------------------------------------------------------------------------------


def test_01_overwrite_refuses_a_project_folder_that_holds_a_config_json(tmp_path, run_cli, no_tf):
    project = tmp_path / "thesis"
    (project / ".git").mkdir(parents=True)
    (project / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "thesis.tex").write_text("years of work")
    (project / "config.json").write_text(config_json())
    before = snapshot(tmp_path)
    result = run_cli("fit", "--overwrite", "--run-dir", project, "--epochs", 1, cwd=tmp_path, env=no_tf)
    one_error_line(result, "--overwrite refused")
    assert ".git" in result.stderr and snapshot(tmp_path) == before


def test_01_clear_run_deletes_only_what_the_package_wrote(tmp_path):
    from lenet_keras.runs import RUN_ENTRIES, clear_run

    run = tmp_path / "run"
    (run / "backup" / "epoch-000001").mkdir(parents=True)
    (run / "tensorboard").mkdir()
    for name in ("labels.txt", "history.csv", "model.keras", "metrics.json", "samples.png",
                 ".model.keras.abc123.tmp.keras"):
        (run / name).write_text("x")
    (run / "config.json").write_text(config_json())
    (run / ".lock").write_text("")
    clear_run(run)
    assert [p.name for p in run.iterdir()] == [".lock"]
    assert "config.json" in RUN_ENTRIES
    (run / "config.json").write_text(config_json())
    (run / "notes.md").write_text("mine")
    with pytest.raises(BadInput, match="notes.md"):
        clear_run(run)
    assert (run / "notes.md").read_text() == "mine"


@pytest.mark.slow
def test_02_a_second_fit_started_at_once_never_replaces_the_first(tmp_path):
    """Two fits on one --run-dir, the second started while the first loads TensorFlow:
    one trains, the other is refused (lock) or finds the run finished; never two runs."""
    command = [sys.executable, "-m", "lenet_keras", "fit", "--epochs", "1", "--run-dir", "run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    out, err = first.communicate(timeout=600)
    outputs = [out + err, second.stdout + second.stderr]
    trained = [o for o in outputs if "test accuracy" in o and "already finished" not in o]
    assert len(trained) == 1, outputs
    other = outputs[1 - outputs.index(trained[0])]
    assert "another fit is already writing" in other or "already finished" in other, other
    assert (tmp_path / "run" / "metrics.json").is_file()


@pytest.mark.slow
def test_03_export_refuses_a_run_that_is_still_training(tmp_path, run_cli):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fit = subprocess.Popen([sys.executable, "-m", "lenet_keras", "fit", "--epochs", "200",
                            "--run-dir", "runs/training"], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not (tmp_path / "runs" / "training" / "model.keras").exists():
            assert time.time() < deadline and fit.poll() is None, "fit wrote no model"
            time.sleep(0.2)
        for args in (["export", "--run-dir", "runs/training"], ["export"]):  # the latest run too
            result = run_cli(*args, cwd=tmp_path)
            one_error_line(result, "still training")
        assert not (tmp_path / "exports").exists()
    finally:
        fit.kill()
        fit.wait()


# ---------------------------------------------------------------------------------------
# Security (4, 5)
# ---------------------------------------------------------------------------------------


def test_04_an_ico_bomb_is_refused_without_decoding(tmp_path):
    """In a fresh process: refused in milliseconds, peak memory far below the 676 MB the
    embedded PNG decodes to."""
    (tmp_path / "bomb.png").write_bytes(ico_bomb())  # any name: the content decides
    code = ("import resource, time; from lenet_keras.sources import open_image; "
            "from lenet_keras.errors import BadInput\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; t = time.perf_counter()\n"
            "try:\n    open_image('bomb.png', 28, 28)\nexcept BadInput as e:\n    print(e)\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    message, numbers = result.stdout.strip().splitlines()
    seconds, grown_kb = map(float, numbers.split())
    assert "not a readable image file" in message
    assert grown_kb < 50_000, f"decoding grew the process by {grown_kb / 1024:.0f} MB"


@pytest.mark.parametrize("fmt", ["ICO", "DDS", "SPIDER", "TGA", "PCX"])
def test_04_06_only_bounded_formats_are_opened(fmt):
    from lenet_keras.sources import open_image

    data = ico_bomb() if fmt == "ICO" else foreign_image(fmt)
    with pytest.raises(BadInput, match="not a readable image file"):
        open_image(io.BytesIO(data), 28, 28)


def test_04_decodes_wait_for_a_slot_then_get_503(monkeypatch):
    from lenet_keras import serve

    service = serve.ModelService.__new__(serve.ModelService)
    service._decodes = __import__("threading").BoundedSemaphore(1)
    service.input_shape = (28, 28, 1)
    monkeypatch.setattr(serve, "DECODE_WAIT_SECONDS", 0.1)
    service._decodes.acquire()  # another upload is being decoded
    with pytest.raises(serve.ServerBusy):
        service.classify(png_bytes())


@pytest.fixture(scope="module")
def keras_server(tiny_run, tmp_path_factory):
    served = Server("--model", Path(tiny_run) / "model.keras",
                    log_path=tmp_path_factory.mktemp("serve3") / "serve.log")
    yield served
    served.stop()


@pytest.mark.slow
def test_05_serve_answers_only_its_own_host_names_and_shows_no_absolute_path(keras_server):
    for host in ("evil.example", "attacker.test:8000", "127.0.0.1.nip.io"):
        status, _, body = request(keras_server, "GET", "/api/model", headers={"Host": host})
        assert status == 400 and "Host" in body["error"], (host, status, body)
    status, _, _ = request(keras_server, "GET", "/static", headers={"Host": "evil.example"})
    assert status == 400  # no redirect to the attacker's host either
    for host in (f"127.0.0.1:{keras_server.port}", "localhost", f"[::1]:{keras_server.port}"):
        status, _, body = request(keras_server, "GET", "/api/model", headers={"Host": host})
        assert status == 200, (host, body)
    assert body["model"] == "model.keras"  # the name only, not where it lives


def test_05_allowed_hosts_for_a_wildcard_address_take_ip_addresses_and_this_machine():
    from lenet_keras.serve import allowed_hosts

    assert allowed_hosts("127.0.0.1") == frozenset({"localhost", "127.0.0.1", "::1"})
    assert "*ip*" in allowed_hosts("0.0.0.0") and "*ip*" not in allowed_hosts("192.168.1.5")


# ---------------------------------------------------------------------------------------
# Crashes and hangs (6-10)
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_06_one_malformed_image_never_aborts_a_predict_batch(tiny_run, tmp_path, run_cli):
    (tmp_path / "good.png").write_bytes(png_bytes())
    (tmp_path / "spider.png").write_bytes(foreign_image("SPIDER"))
    (tmp_path / "dds.jpg").write_bytes(foreign_image("DDS"))
    (tmp_path / "truncated.png").write_bytes(png_bytes()[:60])
    result = run_cli("predict", "good.png", "spider.png", "dds.jpg", "truncated.png",
                     "--model", Path(tiny_run) / "model.keras", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.startswith("good.png: ") and len(result.stdout.splitlines()) == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("Error: cannot read image") for e in errors), errors


def test_06_an_image_folder_skips_and_reports_malformed_files(tmp_path):
    from lenet_keras.sources import load_image_folder

    for label in ("cats", "dogs"):
        (tmp_path / "photos" / label).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "photos" / label / f"{i}.png").write_bytes(png_bytes())
    (tmp_path / "photos" / "cats" / "evil.png").write_bytes(foreign_image("SPIDER"))
    os.mkfifo(tmp_path / "photos" / "dogs" / "pipe.png")  # would block a plain open()
    arrays = load_image_folder(tmp_path / "photos")
    assert sorted(Path(p).name for p in arrays.skipped_files) == ["evil.png", "pipe.png"]
    assert len(arrays.x_train) + len(arrays.x_test) == 6


def test_07_export_paths_with_wildcards(tmp_path, run_cli, no_tf):
    from lenet_keras.exports import default_export_dir

    assert default_export_dir("runs/a[1]\\b*") == Path("exports/a_1__b_")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(config_json())
    (tmp_path / "run" / "model.keras").write_text("x")
    result = run_cli("export", "--run-dir", "run", "--out", "out[1]", cwd=tmp_path, env=no_tf)
    one_error_line(result, "wildcards")


@pytest.mark.slow
def test_07_08_export_of_a_bracketed_run_under_keras_backend_jax(tiny_run, tmp_path, run_cli):
    """The run folder holds [ and \\, and KERAS_BACKEND=jax (the README's GPU set-up):
    export works, and its SavedModel loads through a path holding [ too."""
    run = tmp_path / "runs" / "lenet5[1]\\x"
    shutil.copytree(tiny_run, run)
    result = run_cli("export", "--run-dir", run, "--quantize", "float32", cwd=tmp_path,
                     env={"KERAS_BACKEND": "jax"}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    export = tmp_path / "exports" / "lenet5_1__x"
    shutil.copytree(export, tmp_path / "copy[2]")
    (tmp_path / "img.png").write_bytes(png_bytes())
    for model in (export / "saved_model", tmp_path / "copy[2]" / "saved_model"):
        predicted = run_cli("predict", "img.png", "--model", model, cwd=tmp_path)
        assert predicted.returncode == 0 and predicted.stdout.startswith("img.png: "), predicted.stderr


def test_09_a_process_whose_coordinator_is_unreachable_says_so_and_times_out(tmp_path, run_cli):
    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "127.0.0.1:9,127.0.0.1:10",
           "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1",
           "LENET_KERAS_JOIN_TIMEOUT": "3"}
    started = time.monotonic()
    result = run_cli("fit", "--backend", "jax", "--distribute", "data-parallel", "--epochs", 1,
                     "--batch-size", 64, "--run-dir", "run", cwd=tmp_path, env=env, timeout=240)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert lines[0].startswith("waiting up to 3 s for process 0 (the coordinator) at 127.0.0.1:9")
    assert lines[-1].startswith("Error: process 0 (the coordinator at 127.0.0.1:9) did not answer")
    assert len(lines) == 2 and time.monotonic() - started < 180


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_10_a_fifo_given_as_model_is_refused_at_once(tmp_path, run_cli, command, no_tf):
    os.mkfifo(tmp_path / "model.tflite")
    (tmp_path / "img.png").write_bytes(png_bytes())
    args = ["img.png"] if command == "predict" else []
    result = run_cli(command, *args, "--model", "model.tflite", cwd=tmp_path, env=no_tf, timeout=60)
    one_error_line(result, "not a regular file")


# ---------------------------------------------------------------------------------------
# Wrong results (11-13)
# ---------------------------------------------------------------------------------------


def test_11_exif_orientation_is_applied(tmp_path):
    """A phone photo stored sideways with Orientation=6 decodes as the upright image."""
    from lenet_keras.sources import open_image

    upright = np.zeros((40, 20), np.uint8)
    upright[:10] = 255  # a white band at the top
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # as the camera stored it
    exif = Image.Image().getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", "JPEG", exif=exif, quality=95)
    decoded, gray = open_image(tmp_path / "phone.jpg", 40, 20)
    assert gray and decoded.shape == (40, 20, 3)
    assert decoded[:8, :, 0].mean() > 200 and decoded[14:, :, 0].mean() < 50


@pytest.mark.slow
def test_12_resume_after_sigkill_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    """Killed (SIGKILL) after epoch 2 of 4 and resumed: bit-identical weights and history
    to the run that was never interrupted (TensorFlow on CPU is deterministic here)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def fit(run):
        return [sys.executable, "-m", "lenet_keras", "fit", "--epochs", "4", "--seed", "3",
                "--run-dir", run]

    subprocess.run(fit("straight"), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=900)
    killed = subprocess.Popen(fit("resumed"), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    state = tmp_path / "resumed" / "backup" / "epoch-000002" / "state.json"
    deadline = time.time() + 600
    while not state.exists():
        assert time.time() < deadline and killed.poll() is None, "no state after epoch 2"
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    subprocess.run(fit("resumed"), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=900)
    from lenet_keras.runs import load_model, read_history

    straight, resumed = (load_model(tmp_path / name / "model.keras") for name in ("straight", "resumed"))
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert read_history(tmp_path / "straight") == read_history(tmp_path / "resumed")


def test_12_epoch_e_shuffles_by_seed_and_e_whatever_ran_before():
    from lenet_keras.pipelines import array_pipeline
    from lenet_keras.quiet import import_tensorflow

    tf = import_tensorflow()
    x, y = np.arange(40, dtype=np.uint8).reshape(40, 1, 1, 1), np.arange(40)

    def labels_of_epoch(epoch_variable, epoch):
        epoch_variable.assign(epoch)
        return np.concatenate([b.numpy() for _, b in dataset_for[id(epoch_variable)]])

    first, second = tf.Variable(0, dtype=tf.int64), tf.Variable(0, dtype=tf.int64)
    dataset_for = {id(v): array_pipeline(x, y, 8, training=True, seed=5, epoch=v) for v in (first, second)}
    straight = [labels_of_epoch(first, e) for e in range(4)]
    assert not all(np.array_equal(straight[0], s) for s in straight[1:])  # reshuffled
    np.testing.assert_array_equal(labels_of_epoch(second, 2), straight[2])  # a resume at epoch 2
    # Without set_epoch (a plain loop over the bundle), each pass takes the next epoch.
    plain = array_pipeline(x, y, 8, training=True, seed=5)
    passes = [np.concatenate([b.numpy() for _, b in plain]) for _ in range(2)]
    np.testing.assert_array_equal(passes[1], straight[1])


def test_12_the_jax_feeder_takes_the_epoch_it_is_given():
    from lenet_keras.feed import ArrayBatches

    x, y = np.zeros((40, 1, 1, 1), np.uint8), np.arange(40)
    straight = ArrayBatches(x, y, 8, training=True, seed=5)
    orders = []
    for _ in range(3):
        orders.append(np.concatenate([straight[i][1] for i in range(len(straight))]))
        straight.on_epoch_end()
    resumed = ArrayBatches(x, y, 8, training=True, seed=5)
    resumed.set_epoch(2)
    np.testing.assert_array_equal(np.concatenate([resumed[i][1] for i in range(len(resumed))]), orders[2])


def test_13_a_label_beyond_the_classes_is_refused_with_the_gap_named(tmp_path, run_cli, no_tf):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x_train=rng.integers(0, 255, (20, 28, 28), np.uint8),
             y_train=np.array([*range(10)] * 2)[:-1].tolist() + [12],
             x_test=rng.integers(0, 255, (10, 28, 28), np.uint8), y_test=np.arange(10))
    result = run_cli("fit", "--dataset", "data.npz", "--run-dir", "run", cwd=tmp_path, env=no_tf)
    one_error_line(result, "no image has label 10, 11")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------
# Confusing errors (14-21)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, env, fragment", [
    (["fit", "--run-dir", "run"], {"KERAS_DISTRIBUTION_NUM_PROCESSES": "two"}, "KERAS_DISTRIBUTION_NUM_PROCESSES"),
    (["fit", "--run-dir", "run"], {"LENET_KERAS_JOIN_TIMEOUT": "soon"}, None),
    (["models"], {"KERAS_BACKEND": "nonsense"}, "KERAS_BACKEND"),
    (["fit", "--run-dir", "run"], {"KERAS_BACKEND": "nonsense"}, "KERAS_BACKEND"),
    (["predict", "img.png", "--model", "m.keras"], {"KERAS_BACKEND": "nonsense"}, "KERAS_BACKEND"),
], ids=["num-processes-two", "join-timeout-unused", "models-backend", "fit-backend", "predict-backend"])
def test_14_environment_mistakes_are_one_line(tmp_path, run_cli, args, env, fragment):
    (tmp_path / "img.png").write_bytes(png_bytes())
    (tmp_path / "m.keras").write_bytes(b"PK")
    result = run_cli(*args, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
    if fragment is None:  # a single-process run never reads the join timeout
        return
    one_error_line(result, fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, fragment", [
    ({"image_size": 28.5}, "image_size must be a whole number"),
    ({"dataset": 5}, "dataset must be text"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"seed": True}, "seed"),
])
def test_15_a_hand_edited_config_json_is_one_line_from_export(tmp_path, run_cli, no_tf, change, fragment):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(config_json(**change))
    (tmp_path / "run" / "model.keras").write_text("x")
    before = snapshot(tmp_path)
    result = run_cli("export", "--run-dir", "run", cwd=tmp_path, env=no_tf)
    one_error_line(result, fragment)
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_15_config_json_colour_that_the_model_does_not_take(tiny_run, tmp_path, run_cli):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "color": "rgb"}))
    result = run_cli("export", "--run-dir", run, "--out", "out", cwd=tmp_path)
    one_error_line(result, "model.keras takes 28x28x1")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def mounted(tmp_path):
    """mount(options) -> a tmpfs mounted under tmp_path (skips where mounting is not
    allowed: it needs root and CAP_SYS_ADMIN)."""
    points = []

    def mount(options):
        point = tmp_path / f"mnt{len(points)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True)
        if done.returncode:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_16_a_read_only_run_folder_is_one_line_before_any_work(tmp_path, mounted, run_cli, no_tf):
    point = mounted("size=4m")
    run = point / "run"
    run.mkdir()
    (run / "config.json").write_text(config_json())
    (run / "history.csv").write_text("epoch,loss,accuracy\n1,0.5,0.8\n")
    (run / "labels.txt").write_text("a\nb\n")
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    for args, fragment in ((["evaluate", "--run-dir", run], "read-only file system"),
                           (["plot-history", "--run-dir", run], "read-only file system")):
        result = run_cli(*args, cwd=tmp_path, env=no_tf)
        line = one_error_line(result, fragment)
        assert str(run) in line and "--out" in line


def test_17_a_full_disk_names_the_file_and_the_space_left(mounted):
    from lenet_keras.errors import write_atomic

    point = mounted("size=64k")
    with pytest.raises(BadInput, match=r"no space left on the device to write '.*metrics.json' \(0.0 MB free\)"):
        write_atomic(point / "metrics.json", "x" * 200_000)
    assert list(point.iterdir()) == []  # nothing half-written


def test_17_a_full_disk_inside_a_writer_is_bad_input_too(tmp_path):
    from lenet_keras.errors import atomic_path

    with pytest.raises(BadInput, match="model.keras"):
        with atomic_path(tmp_path / "model.keras"):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(BadInput, match="state.weights.h5"):  # h5py says it in words
        with atomic_path(tmp_path / "state.weights.h5"):
            raise RuntimeError("Unable to synchronously create file (errno = 28, error message "
                               "= 'No space left on device')")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_18_run_files_honour_the_umask(tmp_path, umask):
    from lenet_keras.errors import atomic_path, write_atomic

    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "config.json", "{}")
        with atomic_path(tmp_path / "model.keras") as tmp:
            tmp.write_bytes(b"PK")
    finally:
        os.umask(previous)
    for name in ("config.json", "model.keras"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_18_a_trained_run_is_readable_by_others(tiny_run):
    for name in ("config.json", "model.keras", "metrics.json", "labels.txt", "history.csv"):
        assert (Path(tiny_run) / name).stat().st_mode & 0o044 == 0o044, name


def _asgi(app, body_events, headers):
    """Run one POST /api/predict through the ASGI app -> (status, body)."""
    sent = []
    events = iter(body_events)

    async def receive():
        event = next(events, None)
        if event is None:
            await asyncio.sleep(3600)
        if isinstance(event, float):
            await asyncio.sleep(event)
            return {"type": "http.request", "body": b"x", "more_body": True}
        return event

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/predict", "raw_path": b"/api/predict",
             "query_string": b"", "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "scheme": "http",
             "http_version": "1.1", "root_path": ""}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


class FakeService:
    labels = ["a", "b"]
    web_dir = None  # no web app beside the model

    def classify(self, data):
        return {"label": "a", "latency_ms": 1.0, "bytes": len(data)}


def test_19_serve_a_client_gone_mid_upload_a_slow_body_and_any_case_of_multipart(monkeypatch, caplog):
    from lenet_keras import serve

    app = serve.create_app(FakeService())
    chunk = {"type": "http.request", "body": b"\x89PNG" * 100, "more_body": True}
    status, body = _asgi(app, [chunk, {"type": "http.disconnect"}],
                         {"Content-Type": "application/octet-stream"})
    assert status == 400 and body == {"error": "client disconnected"}
    assert "Traceback" not in caplog.text
    monkeypatch.setattr(serve, "BODY_CHUNK_TIMEOUT_SECONDS", 0.2)
    status, body = _asgi(app, [chunk, 5.0], {"Content-Type": "application/octet-stream"})
    assert status == 408 and "timed out" in body["error"]
    payload, headers = multipart(png_bytes())
    headers = {"Content-Type": headers["Content-Type"].replace("multipart/form-data", "Multipart/Form-Data")}
    status, body = _asgi(app, [{"type": "http.request", "body": payload, "more_body": False}], headers)
    assert status == 200 and body["bytes"] == len(png_bytes())  # the file, not the raw body


def test_19_a_wildcard_listen_address_prints_a_reachable_url():
    from lenet_keras.serve import bind_socket, url_of

    sock = bind_socket("0.0.0.0", 0)
    try:
        assert url_of(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


@pytest.mark.slow
def test_20_predict_keeps_one_line_per_image_and_says_what_a_path_is(tiny_run, tmp_path, run_cli):
    (tmp_path / "two\nlines.png").write_bytes(png_bytes())
    (tmp_path / "folder.png").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "plain.tif", compression="tiff_lzw")
    result = run_cli("predict", "two\nlines.png", "folder.png", "pipe.png", "plain.tif",
                     "--model", Path(tiny_run) / "model.keras", cwd=tmp_path, timeout=120)
    out, err = result.stdout.splitlines(), result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(out) == 2, result.stdout
    assert out[0].startswith("'two\\nlines.png': ") and out[1].startswith("plain.tif: ")
    assert err == ["Error: image 'folder.png' is a folder, not an image file",
                   "Error: image 'pipe.png' is not a regular file (a pipe, socket or device)"]


@pytest.mark.parametrize("call, fragment", [
    (lambda lk: lk.build_model("lenet5", input_shape=(10000, 10000, 3)), "input_shape"),
    (lambda lk: lk.build_model("lenet5", input_shape=(28, 28)), "input_shape"),
    (lambda lk: lk.build_model("lenet5", input_shape=(28, 28, 2)), "input_shape"),
    (lambda lk: lk.build_model("mobilenet_mini", (32, 32, 3), width=0), "width must be positive"),
    (lambda lk: lk.build_model("mobilenet_mini", (32, 32, 3), width=-1), "width must be positive"),
    (lambda lk: lk.build_model("lenet5", (28, 28, 1), num_classes=1.5), "num_classes"),
    (lambda lk: lk.train("lenet5"), "TrainConfig"),
    (lambda lk: lk.train(lk.TrainConfig(), run_dir=123), "run_dir"),
    (lambda lk: lk.predict(123, "m.tflite"), "paths"),
    (lambda lk: lk.predict(["a.png"], model=3.5), "model"),
    (lambda lk: lk.predict(["a.png"], "m.tflite", top=0), "top"),
])
def test_21_public_functions_check_their_arguments(call, fragment):
    import lenet_keras as lk

    with pytest.raises(BadInput, match=fragment):
        call(lk)


def test_21_predict_takes_one_path_as_a_list_of_one(tmp_path, monkeypatch):
    from lenet_keras import predictors

    seen = []
    monkeypatch.setattr(predictors, "read_image", lambda path, shape: seen.append(path) or np.zeros(shape))

    class Model:
        input_shape, labels = (28, 28, 1), ["a", "b"]

        def predict(self, x):
            return np.tile([0.25, 0.75], (len(x), 1))

    for one in ("shirt.png", Path("shirt.png")):
        assert predictors.predict_files(one, Model()) == [(one, [("b", 0.75)])]
    assert seen == ["shirt.png", Path("shirt.png")]


# ---------------------------------------------------------------------------------------
# Interoperability (22)
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_22_a_label_smoothing_model_loads_in_plain_keras(tmp_path):
    from lenet_keras.config import TrainConfig
    from lenet_keras.training import train

    train(TrainConfig(model="lenet5_mini", epochs=1, label_smoothing=0.1), tmp_path / "run",
          log=lambda *_: None)
    code = ("import sys; import keras; m = keras.saving.load_model(sys.argv[1]); "
            "assert 'lenet_keras' not in sys.modules; print(m.count_params())")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run" / "model.keras")],
                            cwd="/", capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-2000:]
