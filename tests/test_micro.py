"""export --micro: the int8 file as a C array, its ops, and a TFLM arena that was measured
by running it (micro.py)."""

import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli_process
from lenet_keras import micro
from lenet_keras.errors import BadInput


@pytest.fixture(scope="module")
def int8(micro_export):
    """(model_int8.tflite bytes, its test images prepared as int8, report's micro entry)."""
    from lenet_keras.export import dataset_arrays
    from lenet_keras.runtimes import TFLiteModel
    from lenet_keras.runs import load_config
    from lenet_keras.pipelines import evaluation_batches

    run_dir, out, report, _ = micro_export
    content = (out / "model_int8.tflite").read_bytes()
    images, _ = dataset_arrays(evaluation_batches(load_config(run_dir)).test, 1000)
    return content, TFLiteModel(content).prepare(images), report["micro"]


def test_c_array_round_trips_to_the_same_bytes(micro_export, int8):
    _, out, _, _ = micro_export
    content, _, entry = int8
    source = (out / "model_int8.cc").read_text()
    assert micro.read_c_array(source) == content
    symbol = entry["symbol"]
    assert symbol == "lenet5_sample_run_model_int8"  # from the run's name, sanitized
    assert f"alignas(16) const unsigned char {symbol}[] = {{" in source
    assert f"const unsigned int {symbol}_len = {len(content)};" in source
    header = (out / "model_int8.h").read_text()
    assert f"extern const unsigned char {symbol}[];" in header
    assert f"#define {symbol.upper()}_ARENA_SIZE {entry['arena_bytes_proposed']}" in header


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
def test_c_array_compiles_aligned_and_holds_the_file(micro_export, int8, tmp_path):
    """A C++ program linking model_int8.cc writes back the array: the .tflite's bytes."""
    _, out, _, _ = micro_export
    content, _, entry = int8
    symbol = entry["symbol"]
    (tmp_path / "main.cc").write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_int8.h"\n'
        "int main() {\n"
        f"  if (reinterpret_cast<std::uintptr_t>({symbol}) % 16) return 3;\n"
        f"  std::fwrite({symbol}, 1, {symbol}_len, stdout);\n  return 0;\n}}\n")
    binary = tmp_path / "dump"
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Werror", "-I", str(out), "-o", str(binary),
                    str(tmp_path / "main.cc"), str(out / "model_int8.cc")], check=True)
    written = subprocess.run([str(binary)], capture_output=True, check=True).stdout
    assert written == content


def test_ops_and_resolver_snippet_list_exactly_the_files_ops(micro_export, int8):
    _, out, _, _ = micro_export
    content, _, entry = int8
    ops = micro.model_ops(content)
    assert entry["ops"] == ops
    assert set(ops) == {"RESHAPE", "CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"}
    listing = (out / "micro_ops.txt").read_text()
    assert listing.splitlines()[: len(ops)] == ops
    assert f"tflite::MicroMutableOpResolver<{len(ops)}> resolver;" in listing
    for call in ("AddReshape", "AddConv2D", "AddMaxPool2D", "AddFullyConnected", "AddSoftmax"):
        assert f"resolver.{call}();" in listing
    # The header's comment carries the same snippet.
    snippet = listing.split("// MicroMutableOpResolver for these ops:\n", 1)[1]
    header = (out / "model_int8.h").read_text().splitlines()
    assert all(f"// {line}".rstrip() in header for line in snippet.splitlines())


def test_tflm_runs_with_the_reported_arena_and_it_is_the_smallest(int8):
    content, images, entry = int8
    arena = entry["arena_bytes"]
    assert entry["flash_bytes"] == len(content)
    assert micro.tflm_runs(content, arena, images[:1])
    assert not micro.tflm_runs(content, arena - 1, images[:1])
    assert entry["arena_bytes_proposed"] == micro.with_margin(arena) >= 1.25 * arena
    assert 4_000 < arena < 64_000  # LeNet-5's activations: a few 28x28x6 int8 maps


def test_tflm_agrees_with_litert_reference_kernels_on_1000_test_images(int8):
    """TFLM ports LiteRT's reference integer kernels: convolutions and pooling are
    bit-exact; the per-tensor fully-connected layers are at most one quantization step
    apart (requantization rounding), and int8 SOFTMAX, which computes exp differently in
    the two, a few steps more. The top-1 class does not change."""
    content, images, entry = int8
    assert len(images) == 1000
    outputs = micro.tflm_outputs(content, entry["arena_bytes"], images)
    reference = micro.reference_outputs(content, images)
    agreement = micro.compare_outputs(outputs, reference)
    # 0.999 on a 5-epoch Fashion-MNIST lenet5; this 2-epoch model has more near-ties.
    assert agreement["top1_agreement"] >= 0.995
    assert agreement["bit_exact"] >= 0.8
    assert agreement["max_step_difference"] <= 16
    by_op = micro.op_differences(content, images[:50])
    assert by_op["CONV_2D"] == by_op["MAX_POOL_2D"] == by_op["RESHAPE"] == 0
    assert by_op["FULLY_CONNECTED"] <= 1
    reported = entry["tflm_vs_litert_reference"]
    assert reported["images"] == 1000
    assert reported["top1_agreement"] == agreement["top1_agreement"]


def test_export_prints_the_micro_summary(micro_export, int8):
    _, _, _, stdout = micro_export
    _, _, entry = int8
    assert (f"TFLite Micro: flash {entry['flash_bytes']:,} B, arena {entry['arena_bytes']:,} B "
            "measured") in stdout
    assert "TFLite Micro vs LiteRT reference kernels on 1000 test images: top-1" in stdout


@pytest.mark.parametrize("name, expected", [
    ("lenet5-fashion-mnist-20250101-120000", "lenet5_fashion_mnist_20250101_120000_model_int8"),
    ("2025 run (copy)", "m_2025_run_copy_model_int8"),
    ("..", "model_int8"),
])
def test_c_identifier_is_a_valid_c_name(name, expected):
    assert micro.c_identifier(name) == expected


@pytest.mark.parametrize("op, method", [
    ("CONV_2D", "AddConv2D"), ("MAX_POOL_2D", "AddMaxPool2D"), ("SOFTMAX", "AddSoftmax"),
    ("FULLY_CONNECTED", "AddFullyConnected"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
    ("AVERAGE_POOL_2D", "AddAveragePool2D"), ("BATCH_TO_SPACE_ND", "AddBatchToSpaceNd"),
    ("PADV2", "AddPadV2"), ("L2_POOL_2D", "AddL2Pool2D"), ("TANH", "AddTanh"),
])
def test_resolver_method_names_match_micro_mutable_op_resolver(op, method):
    assert micro.resolver_method(op) == method


def test_read_c_array_rejects_a_wrong_length():
    with pytest.raises(ValueError, match="holds 2 bytes"):
        micro.read_c_array("const unsigned char a[] = {\n 0x01, 0x02,\n};\nconst unsigned int a_len = 3;")
    assert micro.read_c_array("x[] = { 0x0a, 0xff };") == b"\x0a\xff"


# ---------------------------------------------------------------------------------------
# A file TFLM cannot run: an int8 SOFTMAX whose input scale is at most 2^-26 aborts TFLM's
# (and LiteRT's reference) softmax Prepare in QuantizeMultiplierGreaterThanOne, no message.
# Untrained mobilenet_mini calibrates to one (its logits span ~2e-6).
# ---------------------------------------------------------------------------------------


def _softmax_input_scale(content):
    for _, subgraph, operator, name in micro._operators(content):
        if name == "SOFTMAX":
            return subgraph.Tensors(operator.Inputs(0)).Quantization().Scale(0)
    raise AssertionError("no SOFTMAX")


def _with_softmax_input_scale(content, scale):
    """``content`` with its SOFTMAX input's scale (a float32 stored once) replaced."""
    old = struct.pack("<f", _softmax_input_scale(content))
    assert content.count(old) == 1
    return content.replace(old, struct.pack("<f", scale))


def test_tflm_cannot_run_draws_the_line_where_tflm_aborts(int8):
    """At 2^-26 TFLM aborts (SIGABRT: the arena search says so at once, where it used to
    try every arena up to 64 MiB and end with 'exit 3'); one float32 step above, it runs."""
    content, images, _ = int8
    assert micro.tflm_cannot_run(content) is None
    floor = float(np.float32(2.0 ** -26))
    above = float(np.nextafter(np.float32(floor), np.float32(1)))
    at_floor = _with_softmax_input_scale(content, floor)
    reason = micro.tflm_cannot_run(at_floor)
    assert reason.startswith("TensorFlow Lite Micro cannot run this int8 model: its SOFTMAX "
                             "input scale 1.49e-08 (times beta 1) is not above 2^-26")
    assert "\n" not in reason
    with pytest.raises(RuntimeError, match=r"TFLM crashed \(SIGABRT\) running the model in "
                                           r"arenas up to 64 MiB"):
        micro.smallest_arena(at_floor, images[:1])
    just_above = _with_softmax_input_scale(content, above)
    assert micro.tflm_cannot_run(just_above) is None
    assert micro.smallest_arena(just_above, images[:1]) > 0
    with pytest.raises(BadInput, match="cannot run this int8 model"):
        micro.export_micro(at_floor, ROOT / "never-written", "run", images[:2])
    assert not (ROOT / "never-written").exists()


def test_export_micro_refuses_a_model_tflm_cannot_run_in_one_line(micro_export, tmp_path):
    """A run whose logits span ~1e-6 (its last layer scaled down): export --micro exits 2
    with one line and writes nothing (it used to end in an internal error, exit 1)."""
    from lenet_keras.quiet import import_keras

    keras = import_keras()
    run_dir = tmp_path / "collapsed-run"
    shutil.copytree(micro_export[0], run_dir)
    model = keras.saving.load_model(run_dir / "model.keras")
    last = [layer for layer in model.layers if layer.weights][-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 1e-7, np.zeros_like(bias)])
    model.save(run_dir / "model.keras")
    out = tmp_path / "export"
    result = run_cli_process("export", "--run-dir", run_dir, "--micro", "--out", out)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: TensorFlow Lite Micro cannot run this int8 model: "
                                    "its SOFTMAX input scale")
    assert "untrained or collapsed weights?" in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["collapsed-run"]


def test_micro_budget_measures_mobilenet_mini(tmp_path):
    """benchmarks/micro_budget.py, as a user runs it: untrained mobilenet_mini calibrated to
    a SOFTMAX TFLM aborts on (exit 1 after 'TFLM did not run the model (exit 3)'); with its
    constants randomised, as tune measures, it gets a row like any model."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "micro_budget.py"), "--models",
         "mobilenet_mini"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("mobilenet_mini"))
    params, flash, _, arena, proposed = (int(v.replace(",", "")) for v in row.split()[1:6])
    assert params == 87_818 and 140_000 < flash < 160_000
    assert 32_000 < arena < 128_000 and proposed == micro.with_margin(arena)


def test_micro_budget_rows_say_why_tflm_cannot_run_a_model():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import micro_budget
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    row = {"model": "mobilenet_mini", "params": 87_818, "flash": 142_950,
           "flash_no_fold": 123_110, "arena": None, "arena_proposed": None,
           "reason": "TensorFlow Lite Micro cannot run this int8 model: its SOFTMAX ..."}
    text = micro_budget.text_row(row)
    assert text.split()[:6] == ["mobilenet_mini", "87,818", "142,950", "123,110", "-", "-"]
    assert text.endswith(row["reason"]) and "fits" not in text
    assert micro_budget.markdown_row(row).endswith(f"| {row['reason']} | — | — |")
    measured = {**row, "arena": 65_760, "arena_proposed": 82_944, "reason": None}
    assert micro_budget.markdown_row(measured).endswith("| 64.2 KB (81 KB) | yes | no |")
