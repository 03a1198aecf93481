"""TensorFlow Lite Micro: the int8 model as a C array, the ops it needs and the RAM it
needs, measured by running it (``export --micro``).

Writes, next to model_int8.tflite::

    model_int8.h     declarations, the arena size, and (in a comment) the op resolver
    model_int8.cc    the file's bytes as a 16-byte aligned ``const unsigned char`` array
    micro_ops.txt    the ops the file uses and a ready ``MicroMutableOpResolver<N>``

The arena is measured, not estimated: TFLM's own interpreter (``tflite-micro``'s Python
package, reference kernels) is built on arenas of different sizes (bisection) until the
smallest in which it allocates and runs is found; that size is recorded, and the size the header proposes
adds ARENA_MARGIN. The file's outputs under TFLM are then compared with LiteRT's
reference kernels (``OpResolverType.BUILTIN_REF``: the same integer arithmetic TFLM
ports) on test images.

    >>> write_c_array(content, "exports/run", "lenet5_fashion_mnist_model_int8")
"""

import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lenet_keras.errors import BadInput

C_BASENAME = "model_int8"
OPS_FILENAME = "micro_ops.txt"
# The measured arena is TFLM's need with reference kernels on this 64-bit host (pointers
# and TFLM's bookkeeping are smaller on a 32-bit MCU). Optimized kernels ask for scratch
# buffers the reference kernels do not (CMSIS-NN convolutions: an im2col buffer of a few
# KB for these models), and TFLM versions differ; so the proposed arena adds 25%, rounded
# up to whole KiB.
ARENA_MARGIN = 0.25
ARENA_ROUND = 1024
# Test images compared between TFLM and LiteRT's reference kernels (both are slow:
# reference kernels, one image at a time).
DEFAULT_AGREEMENT_SAMPLES = 1000
BYTES_PER_LINE = 12
# TFLM's int8 SOFTMAX takes beta * input scale as a fixed-point number with 5 integer
# bits (kScaledDiffIntegerBits) and needs it above 1 there: beta * scale > 2**-26 (see
# tflm_cannot_run).
SOFTMAX_INTEGER_BITS = 5
SOFTMAX_SCALE_FLOOR = 2.0 ** -(31 - SOFTMAX_INTEGER_BITS)
# MicroMutableOpResolver method names that are not the op's CamelCase name.
_RESOLVER_METHODS = {"PADV2": "AddPadV2", "UNIDIRECTIONAL_SEQUENCE_LSTM":
                     "AddUnidirectionalSequenceLSTM", "L2_POOL_2D": "AddL2Pool2D"}


# ---------------------------------------------------------------------------------------
# The C array
# ---------------------------------------------------------------------------------------


def c_identifier(name, suffix=C_BASENAME):
    """A C identifier from a run name: 'lenet5-fashion-mnist-2025' ->
    'lenet5_fashion_mnist_2025_model_int8' (never starting with a digit)."""
    stem = re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_").lower()
    identifier = f"{stem}_{suffix}" if stem else suffix
    return f"m_{identifier}" if identifier[0].isdigit() else identifier


def _array_lines(content):
    lines = []
    for start in range(0, len(content), BYTES_PER_LINE):
        chunk = content[start: start + BYTES_PER_LINE]
        lines.append("    " + ", ".join(f"0x{byte:02x}" for byte in chunk) + ",")
    return "\n".join(lines)


def write_c_array(content, out_dir, symbol, arena_size, header_comment=""):
    """Write ``model_int8.cc`` / ``model_int8.h`` holding ``content`` as ``symbol`` (a
    16-byte aligned const array, as TFLM's examples do), ``symbol_len`` and the macro
    ``SYMBOL_ARENA_SIZE`` (``arena_size``).

    ``header_comment`` (text, no comment markers) goes at the top of the header.
    Returns (cc path, h path).
    """
    out_dir = Path(out_dir)
    guard = f"{symbol.upper()}_H_"
    comment = "\n".join(f"// {line}".rstrip() for line in header_comment.splitlines())
    header = (
        f"{comment}\n\n#ifndef {guard}\n#define {guard}\n\n"
        f"#define {symbol.upper()}_ARENA_SIZE {arena_size}\n\n"
        f"extern const unsigned char {symbol}[];\n"
        f"extern const unsigned int {symbol}_len;\n\n#endif  // {guard}\n")
    source = (
        f"// {C_BASENAME}.tflite as a C array; see {C_BASENAME}.h.\n\n"
        f'#include "{C_BASENAME}.h"\n\n'
        "// TFLM reads weights in place: the schema wants 16-byte aligned buffers.\n"
        f"alignas(16) const unsigned char {symbol}[] = {{\n{_array_lines(content)}\n}};\n"
        f"const unsigned int {symbol}_len = {len(content)};\n")
    cc_path, h_path = out_dir / f"{C_BASENAME}.cc", out_dir / f"{C_BASENAME}.h"
    cc_path.write_text(source)
    h_path.write_text(header)
    return cc_path, h_path


def read_c_array(source_text):
    """The bytes of the (first) array in a ``model_int8.cc`` text, checked against its
    ``_len`` constant."""
    body = source_text[source_text.index("{") + 1: source_text.index("};")]
    content = bytes(int(token, 16) for token in re.findall(r"0x([0-9a-fA-F]{2})", body))
    declared = re.search(r"_len = (\d+);", source_text)
    if declared and int(declared.group(1)) != len(content):
        raise ValueError(f"array holds {len(content)} bytes, _len says {declared.group(1)}")
    return content


# ---------------------------------------------------------------------------------------
# Ops
# ---------------------------------------------------------------------------------------


def _operators(content):
    """(schema module, subgraph, operator, op name) for every operator of a .tflite; the
    name as model_ops gives it."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(bytes(content), 0)
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            operator = subgraph.Operators(o)
            code = model.OperatorCodes(operator.OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = (f"CUSTOM:{code.CustomCode().decode()}"
                    if builtin == schema.BuiltinOperator.CUSTOM else names[builtin])
            yield schema, subgraph, operator, name


def model_ops(content):
    """The builtin op names a .tflite uses, in order of first use ('CONV_2D', ...);
    custom ops as 'CUSTOM:name'."""
    return list(dict.fromkeys(name for *_, name in _operators(content)))


def tflm_cannot_run(content):
    """Why TFLM cannot run ``content``, in one line, where that is known from the file
    alone (else None): an int8 SOFTMAX whose input scale is too small.

    TFLM's int8 softmax (and LiteRT's reference kernel) turns beta * input scale into a
    fixed-point multiplier with SOFTMAX_INTEGER_BITS integer bits; its Prepare calls
    QuantizeMultiplierGreaterThanOne, whose TFLITE_CHECK aborts the whole process, no
    message, unless beta * scale * 2**(31 - SOFTMAX_INTEGER_BITS) > 1. Logits that span
    less than ~4e-6 on the calibration images (untrained weights whose activations
    vanish, as mobilenet_mini's at initialization) get such a scale."""
    for schema, subgraph, operator, name in _operators(content):
        if name != "SOFTMAX":
            continue
        tensor = subgraph.Tensors(operator.Inputs(0))
        quantization = tensor.Quantization()
        if (tensor.Type() not in (schema.TensorType.INT8, schema.TensorType.UINT8)
                or quantization is None or quantization.ScaleLength() == 0):
            continue
        options = schema.SoftmaxOptions()
        table = operator.BuiltinOptions()
        beta = 1.0
        if table is not None:
            options.Init(table.Bytes, table.Pos)
            beta = options.Beta()
        scale = quantization.Scale(0)
        if beta * scale <= SOFTMAX_SCALE_FLOOR:
            return (f"TensorFlow Lite Micro cannot run this int8 model: its SOFTMAX input "
                    f"scale {scale:.3g} (times beta {beta:g}) is not above 2^-26 = "
                    f"{SOFTMAX_SCALE_FLOOR:.3g}, which TFLM's int8 softmax needs (its "
                    "Prepare aborts in QuantizeMultiplierGreaterThanOne); the logits span "
                    f"only {scale * 255:.2g} on the calibration images: untrained or "
                    "collapsed weights?")
    return None


def resolver_method(op):
    """MicroMutableOpResolver's method for a builtin op: 'MAX_POOL_2D' -> 'AddMaxPool2D'."""
    if op in _RESOLVER_METHODS:
        return _RESOLVER_METHODS[op]
    parts = op.split("_")
    return "Add" + "".join(p if any(c.isdigit() for c in p) else p.capitalize() for p in parts)


def op_resolver_snippet(ops, symbol, arena_size):
    """C++ that registers exactly these ops and builds the interpreter for this model."""
    lines = [
        '#include "tensorflow/lite/micro/micro_interpreter.h"',
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        f'#include "{C_BASENAME}.h"',
        "",
        f"alignas(16) static uint8_t tensor_arena[{symbol.upper()}_ARENA_SIZE];",
        "",
        "tflite::MicroInterpreter& model_interpreter() {",
        f"  static tflite::MicroMutableOpResolver<{len(ops)}> resolver;",
    ]
    lines += [f"  resolver.{resolver_method(op)}();" for op in ops]
    lines += [
        "  static tflite::MicroInterpreter interpreter(",
        f"      tflite::GetModel({symbol}), resolver, tensor_arena,",
        f"      {symbol.upper()}_ARENA_SIZE);",
        "  interpreter.AllocateTensors();  // kTfLiteOk: the arena is large enough",
        "  return interpreter;",
        "}",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Running it under TFLM
# ---------------------------------------------------------------------------------------


# The search runs in a child process: TFLM's Python interpreter sometimes crashes
# (SIGSEGV) instead of failing cleanly when an arena is far too small. The child prints
# each size before and after trying it; when it dies, the size it was trying failed, and
# a new child goes on from there. A new search first tries the largest arena: a model
# TFLM cannot run at all (a kernel's check aborting, see tflm_cannot_run) fails there at
# once, instead of passing for an arena too small at every size up to the limit.
_SEARCH = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model, image = open(sys.argv[1], "rb").read(), np.load(sys.argv[2])
low, high, limit = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def runs(size):
    print("try", size, flush=True)
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=size)
        interpreter.set_input(image, 0)
        interpreter.invoke()
        ok = True
    except (RuntimeError, ValueError):
        ok = False
    print("ok" if ok else "fail", size, flush=True)
    return ok

if high <= 0 and not runs(limit):
    sys.exit(3)
while high <= 0:
    size = max(2 * low, 4096)
    if size > limit:
        sys.exit(3)
    if runs(size):
        high = size
    else:
        low = size
while high - low > 1:
    middle = (low + high) // 2
    if runs(middle):
        high = middle
    else:
        low = middle
"""
ARENA_LIMIT = 64 * 1024 * 1024


def smallest_arena(content, image, low=0, high=0):
    """The smallest arena (bytes) in which TFLM allocates and runs ``content`` on
    ``image`` ([1, H, W, C] in the input's dtype): doubling from 4 KiB until one runs,
    then bisection. ``low`` is known to fail, ``high`` (if > 0) to run."""
    with tempfile.TemporaryDirectory(prefix="tflm-arena-") as folder:
        model_path, image_path = Path(folder) / "model.tflite", Path(folder) / "image.npy"
        model_path.write_bytes(bytes(content))
        np.save(image_path, np.asarray(image))
        while True:
            child = subprocess.run(
                [sys.executable, "-c", _SEARCH, str(model_path), str(image_path), str(low),
                 str(high), str(ARENA_LIMIT)], capture_output=True, text=True, timeout=600)
            trying = None
            for word, size in (line.split() for line in child.stdout.splitlines()):
                size = int(size)
                if word == "try":
                    trying = size
                elif word == "ok":
                    high, trying = size, None
                else:
                    low, trying = size, None
            if child.returncode == 0 and high - low <= 1 and high > 0:
                return high
            if trying is None or trying >= ARENA_LIMIT:  # it cannot run at all
                raise RuntimeError(_no_arena(child))
            low = trying  # it crashed on this size: too small


def _no_arena(child):
    """The error of a search that found no arena: how the child ended, and TFLM's log."""
    if child.returncode < 0:
        ended = f"crashed ({signal.Signals(-child.returncode).name})"
    else:
        ended = f"failed (exit {child.returncode})"
    log = " ".join(child.stderr.split())[-300:] or "no message"
    return f"TFLM {ended} running the model in arenas up to {ARENA_LIMIT // 2**20} MiB: {log}"


def tflm_runs(content, arena_size, image):
    """Whether TFLM allocates ``content`` in ``arena_size`` bytes and runs ``image``
    (tried in a child process, see smallest_arena)."""
    if arena_size < 2:
        return False
    # Between a failing size-1 and a running size+1 the search tries exactly ``size``.
    return smallest_arena(content, image, arena_size - 1, arena_size + 1) == arena_size


def with_margin(arena_size, margin=ARENA_MARGIN, step=ARENA_ROUND):
    """The arena to allocate on a device: measured + margin, rounded up to ``step``."""
    return int(-(-arena_size * (1 + margin) // step) * step)


def tflm_outputs(content, arena_size, images):
    """Raw output tensors [N, ...] of TFLM on prepared (int8) images, one at a time."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(bytes(content), arena_size=arena_size)
    outputs = []
    for image in images:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0))[0])
    return np.stack(outputs)


def reference_outputs(content, images):
    """Raw output tensors of LiteRT's reference kernels (``BUILTIN_REF``: no XNNPACK, no
    optimized kernels) on prepared images."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=bytes(content), num_threads=1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for image in images:
        interpreter.set_tensor(source, image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target)[0].copy())
    return np.stack(outputs)


def compare_outputs(micro, reference):
    """How close TFLM's raw int8 outputs are to the reference kernels' outputs."""
    steps = np.abs(micro.astype(np.int32) - reference.astype(np.int32))
    return {
        "images": int(len(micro)),
        "top1_agreement": float(np.mean(micro.argmax(1) == reference.argmax(1))),
        "bit_exact": float(np.mean(np.all(steps == 0, axis=1))),
        "max_step_difference": int(steps.max()) if steps.size else 0,
    }


def op_differences(content, images, arena_size=4 * 1024 * 1024):
    """{op name: largest difference, in quantization steps, between TFLM's and LiteRT's
    reference kernels in any output of that op}, every tensor kept on both sides."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    reference = Interpreter(model_content=bytes(content), num_threads=1,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                            experimental_preserve_all_tensors=True)
    reference.allocate_tensors()
    micro = runtime.Interpreter.from_bytes(
        bytes(content), arena_size=arena_size,
        intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    source = reference.get_input_details()[0]["index"]
    worst = {}
    for image in images:
        reference.set_tensor(source, image[None])
        reference.invoke()
        micro.set_input(image[None], 0)
        micro.invoke()
        for op in reference._get_ops_details():
            for tensor in op["outputs"]:
                expected = reference.get_tensor(tensor).astype(np.int32)
                got = np.asarray(micro.GetTensor(tensor, 0)["tensor_data"]).astype(np.int32)
                step = int(np.abs(expected - got.reshape(expected.shape)).max())
                worst[op["op_name"]] = max(worst.get(op["op_name"], 0), step)
    return worst


# ---------------------------------------------------------------------------------------
# The export step
# ---------------------------------------------------------------------------------------


def export_micro(content, out_dir, run_name, prepared_images, description=""):
    """Write model_int8.cc/.h and micro_ops.txt for int8 .tflite ``content`` and return
    the report's ``micro`` entry (flash and arena bytes, ops, TFLM vs reference kernels).

    Args:
        content: model_int8.tflite bytes.
        out_dir: the export directory.
        run_name: the run's name (the C identifiers are derived from it).
        prepared_images: test images already in the input's int8 dtype, [N, H, W, C].
        description: one line about the model for the header.

    Raises:
        BadInput: a file TFLM cannot run (``tflm_cannot_run``), before anything runs it
        (TFLM and LiteRT's reference kernels would abort this process) or is written.
    """
    from lenet_keras.runtimes import TFLiteModel

    if reason := tflm_cannot_run(content):
        raise BadInput(reason)
    symbol = c_identifier(run_name)
    ops = model_ops(content)
    arena = smallest_arena(content, prepared_images[:1])
    proposed = with_margin(arena)
    micro = tflm_outputs(content, arena, prepared_images)
    agreement = compare_outputs(micro, reference_outputs(content, prepared_images))
    # Where they differ, op by op.
    agreement["max_step_difference_by_op"] = op_differences(content, prepared_images)
    runner = TFLiteModel(content)
    tensors = (f"input {runner.input_info['dtype']} {runner.input_info['shape']} "
               f"scale {runner.input_info['scale']:.6g} zero point "
               f"{runner.input_info['zero_point']}; output {runner.output_info['dtype']} "
               f"{runner.output_info['shape']} scale {runner.output_info['scale']:.6g} "
               f"zero point {runner.output_info['zero_point']}")
    snippet = op_resolver_snippet(ops, symbol, proposed)
    header_comment = (
        f"{C_BASENAME}.h: {description or run_name}\n"
        f"Written by `lenet-keras export --micro`; the array's bytes are {C_BASENAME}.tflite.\n"
        f"\n"
        f"Flash: {len(content):,} bytes. Tensor arena: {arena:,} bytes measured (the\n"
        f"smallest in which TFLM's reference kernels ran it), {proposed:,} proposed\n"
        f"(+{ARENA_MARGIN:.0%}, rounded up to {ARENA_ROUND} B, for optimized kernels' scratch\n"
        f"buffers and other TFLM versions).\n"
        f"Tensors: {tensors}.\n"
        f"Ops ({len(ops)}): {', '.join(ops)}.\n"
        f"\n" + snippet)
    write_c_array(content, out_dir, symbol, proposed, header_comment)
    (Path(out_dir) / OPS_FILENAME).write_text(
        "\n".join(ops) + "\n\n// MicroMutableOpResolver for these ops:\n" + snippet + "\n")
    return {
        "files": [f"{C_BASENAME}.cc", f"{C_BASENAME}.h", OPS_FILENAME],
        "symbol": symbol,
        "flash_bytes": len(content),
        "arena_bytes": arena,
        "arena_bytes_proposed": proposed,
        "arena_margin": (f"+{ARENA_MARGIN:.0%} rounded up to {ARENA_ROUND} B: the measured "
                         "arena is TFLM's reference kernels on a 64-bit host; optimized "
                         "kernels add scratch buffers"),
        "ops": ops,
        "tflm_vs_litert_reference": agreement,
    }


def micro_files(job, fmt):
    """The format table's converter for ``micro`` (export --micro): the int8 file the
    export just wrote (``fmt.needs``), as a C array, checked against LiteRT's reference
    kernels on the first DEFAULT_AGREEMENT_SAMPLES test images. Returns the report's
    ``micro`` section.

    Raises:
        BadInput: a file TFLM cannot run (see export_micro); the export then writes
        nothing.
    """
    from lenet_keras.quiet import native_output_captured
    from lenet_keras.runtimes import TFLiteModel

    content = job.written[fmt.needs[0]].read_bytes()
    images = job.x_test[:DEFAULT_AGREEMENT_SAMPLES]
    job.log(f"TensorFlow Lite Micro: measuring the arena, comparing {len(images)} test images "
            "with LiteRT's reference kernels")
    with native_output_captured("running the model under TensorFlow Lite Micro"):
        return export_micro(content, job.staging, job.run_name,
                            TFLiteModel(content).prepare(images), job.summary)
