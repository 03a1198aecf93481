"""The format table (formats.py): every consumer reads it, and ONNX is one row of it."""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet_keras import formats
from lenet_keras.errors import BadInput
from lenet_keras.formats import CHOICES, FORMATS, SERVE_ORDER, TFLITE_FORMATS, for_path, get

RUNTIME_METHODS = ("open", "predict", "timer", "embedded_labels", "close")


def onnx_installed():
    try:
        formats.require(get("onnx"))
        return True
    except BadInput:
        return False


needs_onnx = pytest.mark.skipif(not onnx_installed(), reason='pip install "lenet-keras[onnx]"')


# ---------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------


def test_every_row_has_a_file_a_converter_and_a_runtime():
    names = [fmt.name for fmt in FORMATS]
    assert len(set(names)) == len(names)
    assert len({fmt.file for fmt in FORMATS}) == len(FORMATS)
    for fmt in FORMATS:
        assert fmt.file and callable(fmt.convert), fmt.name
        for need in fmt.needs:  # what a row needs comes before it
            assert names.index(need) < names.index(fmt.name), fmt.name
        if fmt.section == "formats":  # a report entry: something runs and verifies the file
            assert fmt.timing in ("reference", "shared", "alone") and fmt.timing_note
            for runtime in (fmt.predictor, fmt.checker):
                assert all(callable(getattr(runtime, m, None)) for m in RUNTIME_METHODS), fmt.name
        else:
            assert fmt.needs and fmt.flag, fmt.name  # micro: a switch building on int8
        assert fmt.extra if fmt.packages else fmt.extra is None
    assert FORMATS[0].name == "keras" and FORMATS[0].always  # the reference comes first
    assert names == ["keras", "saved_model", "float32", "dynamic", "float16", "int8",
                     "mediapipe", "onnx", "web", "micro"]
    assert TFLITE_FORMATS == ("float32", "dynamic", "float16", "int8")
    assert CHOICES == (*TFLITE_FORMATS, "onnx")
    assert [fmt.file for fmt in SERVE_ORDER] == [
        "model_int8.tflite", "model_float16.tflite", "model_dynamic.tflite",
        "model_float32.tflite", "model.onnx", "saved_model"]


def test_select_adds_the_always_formats_and_what_a_format_needs():
    assert [f.name for f in formats.select(())] == ["keras", "saved_model", "mediapipe"]
    assert [f.name for f in formats.select(("micro", "float32"))] == [
        "keras", "saved_model", "float32", "int8", "mediapipe", "micro"]
    with pytest.raises(BadInput, match="unknown format 'keras'"):
        formats.select(("keras",))  # always written, not a choice
    # The page ships the faster of int8 and float32: both are written and timed first.
    assert [f.name for f in formats.select(("web",))] == [
        "keras", "saved_model", "float32", "int8", "mediapipe", "web"]


@pytest.mark.parametrize("name, expected", [
    ("model_int8.tflite", "int8"), ("model_mediapipe.tflite", "mediapipe"),
    ("model.onnx", "onnx"), ("model.keras", "keras"), ("saved_model", "saved_model"),
    ("mine.tflite", "float32"), ("mine.onnx", "onnx"), ("best.keras", "keras"),
    ("model_int8.cc", None), ("notes.txt", None),
])
def test_for_path_finds_the_row_by_file_name_then_by_kind(name, expected):
    fmt = for_path(Path("/nowhere") / name)
    assert (fmt.name if fmt else None) == expected


def test_load_predictor_opens_a_file_with_its_rows_runtime(tmp_path, monkeypatch):
    """A row added to the table is all load_predictor needs: no suffix check elsewhere."""
    from lenet_keras.predictors import load_predictor

    class Fake:
        num_outputs = 2

        @classmethod
        def open(cls, path, safe_mode=True):
            fake = cls()
            fake.path, fake.safe_mode = path, safe_mode
            return fake

        def embedded_labels(self):
            return ["cat", "dog"]

    row = replace(get("onnx"), name="fake", file="model.fake", predictor=Fake, packages=(),
                  extra=None)
    monkeypatch.setattr(formats, "FORMATS", (*FORMATS, row))
    (tmp_path / "other.fake").write_bytes(b"weights")
    predictor = load_predictor(tmp_path / "other.fake", safe_mode=False)
    assert isinstance(predictor, Fake) and predictor.format is row
    assert predictor.labels == ["cat", "dog"] and predictor.safe_mode is False
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(BadInput, match=r"not a model: pass a \.keras, \.tflite, \.onnx or "
                                       r"\.fake file or a SavedModel directory"):
        load_predictor(tmp_path / "notes.txt")


def test_model_in_export_follows_the_tables_serve_order(tmp_path):
    from lenet_keras.exports import model_in_export

    (tmp_path / "saved_model").mkdir()
    assert model_in_export(tmp_path).name == "saved_model"
    (tmp_path / "model.onnx").write_bytes(b"")
    assert model_in_export(tmp_path).name == "model.onnx"
    (tmp_path / "model_float32.tflite").write_bytes(b"")
    assert model_in_export(tmp_path).name == "model_float32.tflite"


def _export_with_report(folder, latencies, sizes=None):
    """An export folder whose files have the bytes its report.json records (``sizes``
    overrides what is on disk) and the given latencies."""
    import json

    entries = {}
    for name, latency in latencies.items():
        path = folder / get(name).file
        path.write_bytes(b"x" * (10 + len(entries)))
        entries[name] = {"bytes": path.stat().st_size, "latency_us": latency}
    for name, size in (sizes or {}).items():
        (folder / get(name).file).write_bytes(b"x" * size)
    (folder / "report.json").write_text(json.dumps({"formats": entries}))


def test_by_speed_puts_the_timed_litert_files_first_fastest_first():
    order = lambda latencies, names=None: [f.name for f in formats.by_speed(latencies, names)]  # noqa: E731
    assert order({}) == [f.name for f in SERVE_ORDER]  # nothing timed: the rank
    assert order({"int8": 23.0, "float32": 19.0})[:2] == ["float32", "int8"]
    assert order({"int8": 5.0, "float32": 19.0}, ("int8", "float32")) == ["int8", "float32"]
    # ONNX and SavedModel latencies do not count (LiteRT files only); nor a missing one.
    assert order({"onnx": 1.0, "saved_model": 1.0, "float32": 19.0, "int8": None})[:2] == [
        "float32", "int8"]


def test_model_in_export_takes_the_fastest_file_report_json_verified(tmp_path):
    from lenet_keras.exports import model_in_export

    _export_with_report(tmp_path, {"int8": 23.0, "float32": 19.0, "float16": 19.5})
    assert model_in_export(tmp_path).name == "model_float32.tflite"
    # A file that is not the one the report measured (other bytes) is not taken on its word.
    _export_with_report(tmp_path, {"int8": 23.0, "float32": 19.0}, sizes={"float32": 3})
    assert model_in_export(tmp_path).name == "model_int8.tflite"
    _export_with_report(tmp_path, {"int8": 5.0, "float32": 19.0})
    assert model_in_export(tmp_path).name == "model_int8.tflite"
    (tmp_path / "report.json").write_text("{not json")  # unreadable: the rank decides
    (tmp_path / "model_float32.tflite").write_bytes(b"")
    assert model_in_export(tmp_path).name == "model_int8.tflite"


def test_cli_export_options_come_from_the_table(invoke):
    result = invoke("export", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert f"comma-separated: {', '.join(CHOICES)}" in text
    assert ", ".join(get(name).file for name in TFLITE_FORMATS) in text  # --tflite
    for fmt in FORMATS:
        if fmt.flag:
            assert f"{fmt.flag} {' '.join(fmt.help.split())}" in text
    bad = invoke("export", "--quantize", "int4")
    assert bad.exit_code == 2 and f"choose from: {', '.join(CHOICES)}" in bad.stderr


def test_onnx_missing_fails_in_one_line_before_any_work(tiny_run, tmp_path):
    """Where onnxruntime is not installed, `export --quantize ...,onnx` (a real process)
    names the extra and writes nothing; so does `predict --model x.onnx`."""
    import os
    import subprocess

    from conftest import ROOT

    def without_onnxruntime(*args):
        code = ("import sys; sys.modules['onnxruntime'] = None; "
                "from lenet_keras.cli import main; sys.argv = ['lenet-keras', *sys.argv[1:]]; "
                "main()")
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=120)

    export = without_onnxruntime("export", "--run-dir", tiny_run, "--out", tmp_path / "out",
                                 "--quantize", "float32,onnx")
    (tmp_path / "x.onnx").write_bytes(b"onnx")
    (tmp_path / "x.png").write_bytes(b"png")
    predict = without_onnxruntime("predict", tmp_path / "x.png", "--model", tmp_path / "x.onnx")
    for result in (export, predict):
        assert result.returncode == 2, result.stderr
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.strip() == ('Error: onnx needs onnxruntime, not installed: '
                                         'pip install "lenet-keras[onnx]"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx", "x.png"]


# ---------------------------------------------------------------------------------------
# ONNX, end to end (the session's micro_export holds model.onnx when the extra is there)
# ---------------------------------------------------------------------------------------


@needs_onnx
def test_onnx_export_is_verified_like_every_other_format(micro_export):
    _, out, report, stdout = micro_export
    entry = report["formats"]["onnx"]
    assert list(report["formats"])[-2:] == ["onnx", "web"] and entry["file"] == "model.onnx"
    assert entry["bytes"] == (out / "model.onnx").stat().st_size
    assert entry["runtime"] == "onnxruntime"
    assert entry["agreement"] == 1.0 and entry["max_abs_diff"] < 1e-5
    assert entry["test_accuracy"] == report["formats"]["keras"]["test_accuracy"]
    assert entry["accuracy_drop_pp"] == 0.0 and entry["latency_us"] > 0
    assert entry["input"]["dtype"] == "float32" and entry["input"]["shape"] == [None, 28, 28, 1]
    assert "onnx: ONNX Runtime, 1 thread" in report["latency"]
    assert report["versions"]["onnxruntime"] and report["versions"]["tf2onnx"]
    assert "\nonnx " in stdout  # a row of the printed table


@needs_onnx
def test_predict_on_the_onnx_file_prints_the_float32_tflite_labels(micro_export, tmp_path,
                                                                   run_cli):
    from lenet_keras.sources import load_arrays

    _, out, _, _ = micro_export
    lone = tmp_path / "lone.onnx"  # no labels.txt beside it: they ride in the file
    lone.write_bytes((out / "model.onnx").read_bytes())
    arrays = load_arrays(None)
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"test{i}.png")
        Image.fromarray(arrays.x_test[i, :, :, 0]).save(paths[-1])
    results = [run_cli("predict", *paths, "--model", model, "--top-k", 2)
               for model in (out / "model.onnx", lone, out / "model_float32.tflite")]
    for result in results:
        assert result.returncode == 0 and result.stderr == "", result.stderr

    def labels(result):
        return [line.split(": ", 1)[1].split(",")[0].rsplit(" ", 1)[0]
                for line in result.stdout.splitlines()]

    assert labels(results[0]) == labels(results[1]) == labels(results[2])
    assert len(labels(results[0])) == 8


@needs_onnx
def test_serve_runs_the_onnx_file_in_a_pool(micro_export, tmp_path):
    from lenet_keras.predictors import load_predictor
    from lenet_keras.serve import ModelService

    _, out, _, _ = micro_export
    service = ModelService(out / "model.onnx", pool_size=2)
    described = service.describe()
    assert described["format"] == "onnx" and described["quantization"] == "none"
    assert described["interpreters"] == 2 and described["input"]["shape"] == [28, 28, 1]
    assert described["labels"] == (out / "labels.txt").read_text().splitlines()
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    path = tmp_path / "noise.png"
    Image.fromarray(image).save(path)
    answer = service.classify(path.read_bytes())
    expected = load_predictor(out / "model_float32.tflite").predict(
        image[None, :, :, None].astype(np.float32))[0]
    assert answer["format"] == "onnx"
    assert answer["top"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)


@needs_onnx
@pytest.mark.parametrize("name", __import__("lenet_keras.registry").registry.list_models())
def test_every_registered_model_converts_to_onnx_with_one_input(name, tmp_path):
    """Untrained weights are enough: one image input (lenet5_classic's captured C3 mask
    is folded in, see convert._frozen_onnx), Keras' probabilities, labels inside."""
    from types import SimpleNamespace

    from lenet_keras.convert import onnx_file
    from lenet_keras.models import build_model
    from lenet_keras.runtimes import OnnxModel

    model = build_model(name, (28, 28, 1), 10)
    job = SimpleNamespace(model=model, staging=tmp_path, describe={
        "labels": [f"c{i}" for i in range(10)], "description": name})
    path, extra = onnx_file(job, get("onnx"))
    runner = OnnxModel(path)
    x = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(runner.predict(x), model(x), atol=1e-5)
    assert runner.input_shape == (28, 28, 1) and runner.embedded_labels()[-1] == "c9"
