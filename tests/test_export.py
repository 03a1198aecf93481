"""Export: every format round-trips, agrees with Keras, and the report says so truthfully."""

import json
import shutil

import numpy as np
import pytest

from lenet_keras.errors import BadInput
from lenet_keras.convert import (
    fold_columns,
    fold_plan,
    space_to_depth_stem,
    stem_factor,
)
from lenet_keras.export import drops_over, export_run
from lenet_keras.exports import MARKER
from lenet_keras.formats import TFLITE_FORMATS, get, parse_formats
from lenet_keras.models import build_model
from lenet_keras.registry import MODELS

def tflite_filename(kind):
    return get(kind).file


ENTRY_FIELDS = {"file", "bytes", "test_accuracy", "accuracy_drop_pp", "agreement", "max_abs_diff",
                "latency_us", "runtime", "input", "output"}
TENSOR_FIELDS = {"dtype", "shape", "scale", "zero_point"}



@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """tiny_run exported in every format (shared by this module, read-only)."""
    out = tmp_path_factory.mktemp("export") / "tiny"
    report = export_run(tiny_run, out, formats=TFLITE_FORMATS, calibration_samples=200,
                        latency_number=20, progress=False, log=lambda *_: None)
    return out, report


@pytest.fixture(scope="module")
def test_split(tiny_run):
    from lenet_keras.export import dataset_arrays
    from lenet_keras.runs import load_config, load_model
    from lenet_keras.pipelines import evaluation_batches

    x, y = dataset_arrays(evaluation_batches(load_config(tiny_run)).test)
    keras_probabilities = load_model(tiny_run / "model.keras").predict(x, verbose=0)
    return x, y, keras_probabilities


# ---------------------------------------------------------------------------------------
# Files and agreement
# ---------------------------------------------------------------------------------------


def test_export_writes_every_file_and_no_leftovers(exported, tiny_run):
    out, _ = exported
    names = {p.name for p in out.iterdir()}
    assert names == {"saved_model", "labels.txt", "report.json", "model_mediapipe.tflite", MARKER,
                     *(tflite_filename(kind) for kind in TFLITE_FORMATS)}
    assert (out / "labels.txt").read_text() == (tiny_run / "labels.txt").read_text()
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]  # staging dir is gone


def test_saved_model_serve_signature_takes_raw_pixels(exported, test_split):
    import tensorflow as tf

    out, _ = exported
    x, _, keras_probabilities = test_split
    loaded = tf.saved_model.load(str(out / "saved_model"))
    served = loaded.serve(tf.constant(x[:50])).numpy()  # raw 0-255 float32, any batch
    np.testing.assert_allclose(served, keras_probabilities[:50], atol=1e-5)
    signature = loaded.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 28, 28, 1]


def test_float32_tflite_agrees_with_keras_to_1e5(exported, test_split):
    from lenet_keras.runtimes import TFLiteModel

    out, report = exported
    x, _, keras_probabilities = test_split
    probabilities = TFLiteModel(out / "model_float32.tflite").predict(x)
    np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-5)
    assert report["formats"]["float32"]["agreement"] == 1.0
    assert report["formats"]["float32"]["max_abs_diff"] < 1e-5


def test_int8_is_full_integer_and_agrees_on_real_images(exported, test_split):
    """tiny_run's test split is 1,000 real Fashion-MNIST images."""
    from lenet_keras.runtimes import TFLiteModel

    out, report = exported
    x, y, keras_probabilities = test_split
    model = TFLiteModel(out / "model_int8.tflite")
    assert model.input_dtype == np.int8 and model.output_dtype == np.int8
    # Raw pixels 0..255 map onto int8 with scale ~1 and zero point ~-128.
    assert model.input_info["scale"] == pytest.approx(1.0, rel=0.02)
    assert model.input_info["zero_point"] == pytest.approx(-128, abs=2)
    probabilities = model.predict(x)
    agreement = np.mean(probabilities.argmax(1) == keras_probabilities.argmax(1))
    assert agreement >= 0.95
    assert report["formats"]["int8"]["agreement"] == pytest.approx(agreement)
    assert report["formats"]["int8"]["test_accuracy"] == pytest.approx(
        np.mean(probabilities.argmax(1) == y))
    # Dequantized outputs are probabilities.
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=0.05)
    entry = report["formats"]["int8"]
    assert entry["input"]["dtype"] == entry["output"]["dtype"] == "int8"
    # ~0.31: int8 weights, plus the zero taps of C1/C3 folded wider than float32's C1.
    assert entry["bytes"] <= 0.32 * report["formats"]["float32"]["bytes"]


def test_tflite_files_use_builtin_ops_only(exported):
    from lenet_keras.runtimes import TFLiteModel

    out, _ = exported
    for kind in TFLITE_FORMATS:
        interpreter = TFLiteModel(out / tflite_filename(kind)).interpreter
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any(name.startswith("Flex") for name in ops), (kind, ops)
        assert ops <= {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX",
                       "DELEGATE", "QUANTIZE", "DEQUANTIZE"}, (kind, ops)


@pytest.mark.parametrize("kind", ["saved_model", *TFLITE_FORMATS])
def test_every_format_round_trips_through_predict(exported, test_split, kind):
    from lenet_keras.predictors import load_predictor

    out, _ = exported
    x, _, keras_probabilities = test_split
    path = out / ("saved_model" if kind == "saved_model" else tflite_filename(kind))
    predictor = load_predictor(path)
    assert predictor.input_shape == (28, 28, 1)
    assert predictor.labels == (out / "labels.txt").read_text().splitlines()
    probabilities = predictor.predict(x[:200])
    assert probabilities.shape == (200, 10)
    assert np.mean(probabilities.argmax(1) == keras_probabilities[:200].argmax(1)) >= 0.95


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------


def test_report_has_every_field_for_every_format(exported):
    out, report = exported
    assert json.loads((out / "report.json").read_text())["formats"].keys() == report["formats"].keys()
    assert list(report["formats"]) == ["keras", "saved_model", *TFLITE_FORMATS, "mediapipe"]
    assert report["num_test"] == 1000 and report["calibration_samples"] == 200
    assert report["model"] == "lenet5"
    for name, entry in report["formats"].items():
        assert ENTRY_FIELDS <= entry.keys(), name
        assert TENSOR_FIELDS <= entry["input"].keys() and TENSOR_FIELDS <= entry["output"].keys()
        assert 0.0 <= entry["test_accuracy"] <= 1.0 and 0.0 <= entry["agreement"] <= 1.0
        assert entry["latency_us"] > 0
        if name in TFLITE_FORMATS:
            assert entry["bytes"] == (out / entry["file"]).stat().st_size
            assert entry["runtime"] == "litert"
            assert entry["input"]["shape"] == [1, 28, 28, 1]
            assert entry["folded_columns"] == (
                {"c1_conv": 7, "c3_conv": 2} if name == "int8" else {"c1_conv": 2})
    keras_accuracy = report["formats"]["keras"]["test_accuracy"]
    for entry in report["formats"].values():
        assert entry["accuracy_drop_pp"] == pytest.approx(
            (keras_accuracy - entry["test_accuracy"]) * 100, abs=1e-3)
    sizes = {k: report["formats"][k]["bytes"] for k in TFLITE_FORMATS}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    assert sizes["dynamic"] < sizes["float16"]
    verdict, int8, float32 = (report["int8_vs_float32"], report["formats"]["int8"],
                              report["formats"]["float32"])
    assert (verdict["int8_us"], verdict["float32_us"]) == (int8["latency_us"], float32["latency_us"])
    assert verdict["ratio"] == pytest.approx(int8["latency_us"] / float32["latency_us"], abs=1e-4)
    assert verdict["faster"] == ("int8" if int8["latency_us"] <= float32["latency_us"] else "float32")


def test_drops_over_names_the_formats_past_the_gate():
    report = {"formats": {"keras": {"accuracy_drop_pp": 0.0},
                          "float32": {"accuracy_drop_pp": 0.0},
                          "int8": {"accuracy_drop_pp": 1.5}}}
    assert drops_over(report, 1.0) == {"int8": 1.5}
    assert drops_over(report, 2.0) == {}


# ---------------------------------------------------------------------------------------
# The space-to-depth stem is the same function
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["float32", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_fold_columns_computes_the_same_function(name, kind):
    import keras

    model = build_model(name, (28, 28, 1), 10)
    for layer in model.layers:  # non-trivial batch-norm statistics, so folding is tested
        if isinstance(layer, keras.layers.BatchNormalization):
            rng = np.random.default_rng(0)
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape)
                                         .astype("float32"))
    plan = fold_plan(model, kind)
    rewritten = fold_columns(model, plan)
    assert (rewritten is not model) == bool(plan)
    x = np.random.default_rng(1).uniform(0, 255, (8, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(rewritten(x), model(x), atol=1e-5)
    for conv, factor in plan.items():  # [H, W, C] read as [H, W/f, f*C]
        height, width, channels = rewritten.get_layer(f"{conv}_fold").input.shape[1:]
        assert rewritten.get_layer(f"{conv}_fold").output.shape[1:] == (
            height, width // factor, factor * channels)


def test_fold_plan_folds_c1_pairs_for_float_and_few_channel_convolutions_for_int8():
    gray, rgb = build_model("lenet5", (28, 28, 1), 10), build_model("lenet5", (32, 32, 3), 10)
    assert [fold_plan(gray, kind) for kind in TFLITE_FORMATS] == [{"c1_conv": 2}] * 3 + [
        {"c1_conv": 7, "c3_conv": 2}]  # 1 -> 7 and 6 -> 12 channels
    assert [fold_plan(rgb, kind) for kind in TFLITE_FORMATS] == [{}] * 3 + [
        {"c1_conv": 4, "c3_conv": 2}]  # widths 32 -> 28 and 14 -> 10: factors divide both
    wide = build_model("lenet5_bn", (28, 28, 1), 10)  # C3 reads 32 channels: left alone
    assert fold_plan(wide, "int8") == {"c1_conv": 7}
    assert [stem_factor(gray, kind) for kind in TFLITE_FORMATS] == [2, 2, 2, 7]
    assert space_to_depth_stem(gray, 7).get_layer("c1_conv_fold").output.shape[1:] == (28, 4, 7)


@pytest.mark.parametrize("name", ["lenet1", "lenet5_classic"])
def test_int8_graphs_take_average_pools_as_depthwise_convolutions(name):
    """The same function (to float rounding), folded and without AVERAGE_POOL_2D, which
    XNNPACK does not take in int8 (docs/SPEED.md); float formats keep their pools."""
    import keras

    from lenet_keras.convert import tflite_graph

    model = build_model(name, (28, 28, 1), 10)
    for layer in model.layers:  # lenet5_classic: coefficients and biases that matter
        for weight in getattr(layer, "coefficient", None), getattr(layer, "bias", None):
            if weight is not None and weight.shape == (layer.input.shape[-1],):
                weight.assign(np.random.default_rng(2).uniform(0.5, 1.5, weight.shape) - 0.2)
    x = np.random.default_rng(1).uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    graph, used = tflite_graph(model, x, fold_plan(model, "int8"), pools=True)
    assert used == fold_plan(model, "int8") and used  # the folding survives
    depthwise = [layer for layer in graph.layers if layer.name.endswith("_depthwise")]
    assert [type(layer) for layer in depthwise] == [keras.layers.DepthwiseConv2D] * 2
    assert not any(isinstance(layer, keras.layers.AveragePooling2D) for layer in graph.layers)
    np.testing.assert_allclose(graph(x), model(x), atol=1e-5)
    float_graph, _ = tflite_graph(model, x, fold_plan(model, "float32"))
    assert not any(layer.name.endswith("_depthwise") for layer in float_graph.layers)


@pytest.mark.parametrize("name", ["lenet5", "mobilenet_mini_050"])
def test_models_without_average_pools_keep_their_int8_graph(name):
    from lenet_keras.convert import pools_as_depthwise

    model = build_model(name, (28, 28, 1), 10)
    assert pools_as_depthwise(model) is model


@pytest.mark.slow
def test_int8_lenet1_runs_in_one_xnnpack_partition(tmp_path):
    """Converted as export does: no int8 AVERAGE_POOL_2D left, one XNNPACK partition,
    the int8 file still agrees with the Keras model."""
    from lenet_keras.convert import convert_tflite, export_saved_model, tflite_graph
    from lenet_keras.runtimes import TFLiteModel

    model = build_model("lenet1", (28, 28, 1), 10)
    x = np.random.default_rng(0).uniform(0, 255, (64, 28, 28, 1)).astype("float32")
    graph, _ = tflite_graph(model, x, fold_plan(model, "int8"), pools=True)
    export_saved_model(graph, tmp_path / "int8", 1)
    content = convert_tflite(tmp_path / "int8", "int8", lambda: ([image[None]] for image in x))
    runner = TFLiteModel(content)
    ops = [op["op_name"] for op in runner.interpreter._get_ops_details()]
    assert "AVERAGE_POOL_2D" not in ops and ops.count("DEPTHWISE_CONV_2D") == 2, ops
    assert ops.count("DELEGATE") == 1, ops  # XNNPACK took the whole graph (SOFTMAX aside)
    np.testing.assert_allclose(runner.predict(x[:8]), model(x[:8]), atol=0.05)


@pytest.mark.parametrize("name", list(MODELS))
def test_every_registered_model_converts_with_builtin_ops_only(name, tmp_path):
    """Untrained weights are enough to prove the graph converts and runs in LiteRT."""
    from lenet_keras.convert import convert_tflite, export_saved_model
    from lenet_keras.runtimes import TFLiteModel

    model = build_model(name, (28, 28, 1), 10)
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    for kind in TFLITE_FORMATS:
        source = tmp_path / kind
        export_saved_model(fold_columns(model, fold_plan(model, kind)), source, 1)
        content = convert_tflite(source, kind, lambda: ([image[None]] for image in x))
        runner = TFLiteModel(content)
        ops = {op["op_name"] for op in runner.interpreter._get_ops_details()}
        assert not any(op.startswith("Flex") for op in ops), ops
        tolerance = {"float32": 1e-5, "float16": 1e-2}.get(kind, 0.05)
        np.testing.assert_allclose(runner.predict(x[:4]), model(x[:4]), atol=tolerance)


def test_parse_formats():
    assert parse_formats("int8, float16") == ("float16", "int8")
    assert parse_formats("FLOAT32") == ("float32",)
    assert parse_formats("onnx,float32") == ("float32", "onnx")
    with pytest.raises(BadInput, match="choose from: float32, dynamic, float16, int8, onnx"):
        parse_formats("int4")


# ---------------------------------------------------------------------------------------
# Atomic writes and the command line
# ---------------------------------------------------------------------------------------


def test_failed_export_leaves_nothing_and_keeps_the_previous_one(tiny_run, tmp_path, monkeypatch):
    import lenet_keras.convert as convert

    out = tmp_path / "exports" / "run"
    out.mkdir(parents=True)
    (out / "report.json").write_text("{}")  # a previous export (marked as one)
    (out / MARKER).write_text(json.dumps({"package": "lenet_keras", "files": ["report.json"]}))

    def fail(*args, **kwargs):
        raise BadInput("converter exploded")

    monkeypatch.setattr(convert, "convert_tflite", fail)
    with pytest.raises(BadInput, match="converter exploded"):
        export_run(tiny_run, out, formats=("float32",), progress=False, log=lambda *_: None)
    assert [p.name for p in out.parent.iterdir()] == ["run"]
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "report.json"]


def test_cli_export_default_destination_and_subset(tiny_run, in_tmp, invoke):
    run = in_tmp / "runs" / "tiny"
    shutil.copytree(tiny_run, run)
    result = invoke("export", "--quantize", "float32")  # latest run, exports/<run-name>/
    assert result.exit_code == 0, result.output + result.stderr
    out = in_tmp / "exports" / "tiny"
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER, "labels.txt", "model_float32.tflite", "model_mediapipe.tflite", "report.json",
        "saved_model"]
    assert "float32" in result.stdout and "saved_model" in result.stdout
    assert f"wrote {out.relative_to(in_tmp)}" in result.stdout
    # Exporting again replaces the previous export in place.
    again = invoke("export", "--run-dir", run)
    assert again.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        MARKER, "labels.txt", "model_mediapipe.tflite", "report.json", "saved_model"]


def test_cli_max_drop_gate_exits_3_after_writing(tiny_run, in_tmp, monkeypatch, invoke):
    import lenet_keras.export as export

    def fake_export(run_dir, out, **kwargs):
        return {"export_dir": str(out), "formats": {
            "keras": {"accuracy_drop_pp": 0.0}, "int8": {"accuracy_drop_pp": 1.7}}}

    monkeypatch.setattr(export, "export_run", fake_export)
    monkeypatch.setattr(export, "format_table", lambda report: "table")
    result = invoke("export", "--run-dir", tiny_run, "--out", in_tmp / "out", "--max-drop", 1)
    assert result.exit_code == 3
    assert result.stderr.strip() == "Error: accuracy drop over --max-drop 1.0 pp: int8 +1.70 pp"
    assert invoke("export", "--run-dir", tiny_run, "--out", in_tmp / "out",
                  "--max-drop", 2).exit_code == 0


@pytest.mark.parametrize("int8_us, shipped", [(23.0, "float32"), (5.0, "int8")],
                         ids=["int8-slower-here", "int8-faster"])
def test_where_int8_is_slower_export_says_so_and_serve_and_the_page_take_float32(
        tiny_run, in_tmp, monkeypatch, invoke, int8_us, shipped):
    """The timing function is replaced: int8 at ``int8_us``, float32 at 19 us, the rest
    at 50 us; export's line, report, serve's file and the page's model follow it."""
    import lenet_keras.export as export
    from lenet_keras.runtimes import TFLiteModel
    from lenet_keras.serve import resolve_model_path

    fake = {"int8": int8_us, "float32": 19.0}
    monkeypatch.setattr(export, "measure_latencies_us",
                        lambda calls, rounds=0, number=0: {n: fake.get(n, 50.0) for n in calls})
    out = in_tmp / "out"
    result = invoke("export", "--run-dir", tiny_run, "--out", out, "--quantize",
                    "float32,int8", "--web", "--calibration-samples", 100)
    assert result.exit_code == 0, result.output + result.stderr
    said = [line for line in result.stdout.splitlines() if line.startswith("int8 is slower")]
    report = json.loads((out / "report.json").read_text())
    verdict, entries = report["int8_vs_float32"], report["formats"]
    assert verdict == {"int8_us": int8_us, "float32_us": 19.0,
                       "ratio": round(int8_us / 19.0, 4), "faster": shipped}
    assert resolve_model_path(export_dir=out) == out / get(shipped).file
    web = entries["web"]
    page = TFLiteModel(out / "web" / "model.tflite")
    assert web["graph"] == shipped
    assert json.loads((out / "web" / "model.json").read_text())["format"] == shipped
    # Either graph takes raw uint8 pixels and gives float32 probabilities (LiteRT.js).
    assert (web["input"]["dtype"], web["output"]["dtype"]) == ("uint8", "float32")
    assert (page.input_dtype, page.output_dtype) == (np.uint8, np.float32)
    # ... and answers as the file it stands in for (the same graph, the same numbers).
    assert web["test_accuracy"] == entries[shipped]["test_accuracy"]
    assert web["agreement"] == entries[shipped]["agreement"]
    if shipped == "float32":
        assert said == ["int8 is slower than float32 here (23.0 vs 19.0 us): serve uses "
                        "model_float32.tflite, the web page the float32 graph"]
        assert web["input"]["scale"] == 0.0 and web["max_abs_diff"] < 1e-5
        assert web["bytes"] > 2 * entries["int8"]["bytes"]
    else:  # as before: the int8 graph behind a uint8 input with scale 1
        assert said == []
        assert (web["input"]["scale"], web["input"]["zero_point"]) == (1.0, 0)
        assert web["bytes"] < 1.1 * entries["int8"]["bytes"]


def _corrupt_run(tiny_run, root):
    run = root / "corrupt"
    shutil.copytree(tiny_run, run)
    (run / "model.keras").write_bytes(b"PK\x03\x04 this is not a keras zip")
    return run


def _run_without_model(tiny_run, root):
    run = root / "unfinished"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run)
    return run


BAD_EXPORTS = [
    (["--run-dir", "{unfinished}"], "no model.keras"),
    (["--run-dir", "{tiny}", "--quantize", "int4"], "unknown quantization 'int4'"),
    (["--run-dir", "{tiny}", "--out", "{file}/sub"], "cannot write"),
    (["--run-dir", "{tiny}", "--out", "{precious}"], "not an export directory"),
    (["--run-dir", "{corrupt}"], "cannot load"),
    (["--run-dir", "{tiny}", "--calibration-samples", "0"], "--calibration-samples"),
]


@pytest.mark.parametrize("args, message", BAD_EXPORTS, ids=[m for _, m in BAD_EXPORTS])
def test_bad_export_is_one_line_exit_2_and_writes_nothing(tiny_run, in_tmp, args, message, invoke):
    paths = {
        "tiny": tiny_run,
        "unfinished": _run_without_model(tiny_run, in_tmp),
        "corrupt": _corrupt_run(tiny_run, in_tmp),
        "file": in_tmp / "notes.txt",
        "precious": in_tmp / "precious",
    }
    paths["file"].write_text("hello")
    paths["precious"].mkdir()
    (paths["precious"] / "thesis.tex").write_text("keep me")
    before = sorted(p.relative_to(in_tmp) for p in in_tmp.rglob("*"))

    result = invoke("export", *[a.format(**paths) for a in args])

    assert result.exit_code == 2, result.output + result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(p.relative_to(in_tmp) for p in in_tmp.rglob("*")) == before


# Builtin int8 kernels a MobileNet may use; each has an XNNPACK int8 (QS8) implementation.
MOBILENET_INT8_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX",
                      "QUANTIZE", "RESHAPE"}


@pytest.mark.parametrize("name", ["mobilenet_mini", "mobilenet_mini_050"])
def test_mobilenet_int8_is_builtin_int8_ops_only_and_runs_in_xnnpack(name, tmp_path):
    from lenet_keras.convert import convert_tflite, export_saved_model
    from lenet_keras.runtimes import TFLiteModel

    model = build_model(name, (28, 28, 1), 10)
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    export_saved_model(model, tmp_path / "src", 1)
    content = convert_tflite(tmp_path / "src", "int8", lambda: ([image[None]] for image in x))

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    plain = Interpreter(model_content=content, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    ops = plain._get_ops_details()
    assert {op["op_name"] for op in ops} <= MOBILENET_INT8_OPS
    assert sum(op["op_name"] == "DEPTHWISE_CONV_2D" for op in ops) == 5
    # Every op computes in int8: batch norm folded, ReLU6 fused, no float islands.
    tensors = {t["index"]: t for t in plain.get_tensor_details()}
    for op in ops:
        if op["op_name"] != "QUANTIZE":
            for index in op["outputs"]:
                assert tensors[index]["dtype"] == np.int8, (op["op_name"], tensors[index]["name"])
    # With LiteRT's default XNNPACK delegate everything up to the softmax is one delegated
    # partition (XNNPACK has no int8 softmax; LiteRT's builtin kernel runs that last op).
    interpreter = TFLiteModel(content).interpreter
    details = interpreter._get_ops_details()
    delegates = [op for op in details if op["op_name"] == "DELEGATE"]
    (softmax,) = [op for op in details if op["op_name"] == "SOFTMAX"]
    assert len(delegates) == 1
    assert interpreter.get_input_details()[0]["index"] in delegates[0]["inputs"]
    assert list(delegates[0]["outputs"]) == list(softmax["inputs"])
