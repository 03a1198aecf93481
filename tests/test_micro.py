"""export --micro: the int8 file as a C array, its ops, and a TFLM arena that was measured
by running it (micro.py)."""

import shutil
import subprocess

import numpy as np
import pytest

from lenet_keras import micro


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
