"""Microcontroller budget of every registered model: int8 flash and TFLM arena, and
whether they fit two common boards.

For each model in the registry (28x28x1 input, 10 classes, as Fashion-MNIST) it builds
the int8 file with ``export``'s own converter (``export.tflite_bytes``: few-channel
convolutions folded, average pools as depthwise convolutions, calibrated on the embedded
sample's training images, metadata added) and measures:

    flash     the .tflite's bytes (= the C array ``export --micro`` writes)
    no fold   the bytes of the model converted as it is, no graph rewrite (the graph
              XNNPACK is slower on)
    arena     the smallest tensor arena in which TensorFlow Lite Micro allocates and runs
              the file (reference kernels, this 64-bit host), and the proposed size with
              micro.ARENA_MARGIN
    fits      flash <= board flash and proposed arena <= board RAM (the application's
              own RAM and stack come on top)

Random weights: the sizes depend on the shapes, not on the values, but every tensor that
starts constant gets distinct values first (``tune.randomise_constants``, as ``tune``
measures): an untrained model's all-zero biases are stored once (~6 KB less flash for
mobilenet_mini), and its activations can vanish (untrained mobilenet_mini's logits span
~2e-6: an int8 SOFTMAX TensorFlow Lite Micro cannot run). A model TFLM cannot run gets its
row with the reason (``micro.tflm_cannot_run``, or how TFLM failed) and the others go on.

    python benchmarks/micro_budget.py                # ~2 minutes on 2 cores
    python benchmarks/micro_budget.py --markdown     # the README table
    python benchmarks/micro_budget.py --models lenet5 mobilenet_mini
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

# (name, RAM bytes, flash bytes): a Cortex-M4/M7 class board (e.g. nRF52840: 256 KB RAM,
# 1 MB flash) and a small one (e.g. STM32L4 entry parts: 64 KB RAM, 256 KB flash).
BOARDS = (("256 KB RAM / 1 MB flash", 256 * 1024, 1024 * 1024),
          ("64 KB RAM / 256 KB flash", 64 * 1024, 256 * 1024))


def int8_file(model, calibration, fold, workdir):
    """model_int8.tflite bytes as ``export`` writes them (``fold=False``: the model as it
    is, no rewrite, for comparison)."""
    from lenet_keras.convert import convert_tflite, export_saved_model
    from lenet_keras.export import tflite_bytes
    from lenet_keras.metadata import add_metadata

    labels = [f"class_{i}" for i in range(model.output_shape[-1])]
    describe = {"labels": labels, "name": model.name, "channels": model.input_shape[-1]}
    if fold:
        return tflite_bytes(model, "int8", calibration[:256], calibration, describe)[0]
    source = Path(workdir) / f"{model.name}-plain"
    export_saved_model(model, source, batch_size=1)
    content = convert_tflite(source, "int8", lambda: ([image[None]] for image in calibration))
    return add_metadata(content, **describe)


def budget(name, calibration, workdir):
    from lenet_keras import micro
    from lenet_keras.models import build_model
    from lenet_keras.runtimes import TFLiteModel
    from lenet_keras.tune import randomise_constants

    model = build_model(name, calibration.shape[1:], 10)
    randomise_constants(model, seed=0)
    content = int8_file(model, calibration, True, workdir)
    image = TFLiteModel(content).prepare(calibration[:1])
    arena, reason = None, micro.tflm_cannot_run(content)
    if not reason:
        try:
            arena = micro.smallest_arena(content, image)
        except RuntimeError as error:  # no arena runs it: say why, measure the others
            reason = str(error)
    return {
        "model": name, "params": model.count_params(), "flash": len(content),
        "flash_no_fold": len(int8_file(model, calibration, False, workdir)),
        "arena": arena, "arena_proposed": arena and micro.with_margin(arena),
        "reason": reason, "ops": micro.model_ops(content),
    }


def fits(row, ram, flash):
    return row["flash"] <= flash and row["arena_proposed"] <= ram


def markdown_row(r):
    """One model's row of the README table."""
    head = (f"| `{r['model']}` | {r['params']:,} | {r['flash'] / 1024:.1f} KB | "
            f"{r['flash_no_fold'] / 1024:.1f} KB |")
    if r["reason"]:
        return f"{head} {r['reason']} |" + " — |" * len(BOARDS)
    marks = " | ".join("yes" if fits(r, ram, flash) else "no" for _, ram, flash in BOARDS)
    return (f"{head} {r['arena'] / 1024:.1f} KB ({r['arena_proposed'] / 1024:.0f} KB) | "
            f"{marks} |")


def text_row(r):
    """One model's row of the fixed-width table (the reason where TFLM cannot run it)."""
    head = f"{r['model']:<20}{r['params']:>9,}{r['flash']:>10,}{r['flash_no_fold']:>11,}"
    if r["reason"]:
        return f"{head}{'-':>9}{'-':>10}  {r['reason']}"
    marks = "  ".join(f"{'fits' if fits(r, ram, flash) else 'too big':<26}"
                      for _, ram, flash in BOARDS)
    return f"{head}{r['arena']:>9,}{r['arena_proposed']:>10,}  {marks}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    from lenet_keras.registry import list_models

    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--models", nargs="+", choices=list_models(), default=list_models(),
                        metavar="MODEL", help="registry models to measure (default: all)")
    args = parser.parse_args(argv)

    from lenet_keras.sources import SAMPLE_PATH, load_npz
    from lenet_keras.quiet import native_output_captured

    calibration = load_npz(SAMPLE_PATH).x_train[:300].astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            with native_output_captured(f"measuring {name}"):
                rows.append(budget(name, calibration, workdir))
            print(f"measured {name}", file=sys.stderr)

    if args.markdown:
        print("| model | params | int8 flash | no fold | TFLM arena (proposed) | "
              + " | ".join(board for board, _, _ in BOARDS) + " |")
        print("|---|---:|---:|---:|---:|" + "---|" * len(BOARDS))
        for r in rows:
            print(markdown_row(r))
        return
    header = (f"{'model':<20}{'params':>9}{'flash B':>10}{'no fold B':>11}{'arena B':>9}"
              f"{'proposed':>10}  " + "  ".join(f"{board:<26}" for board, _, _ in BOARDS))
    print(header)
    for r in rows:
        print(text_row(r))
    print("ops:", {r["model"]: ", ".join(r["ops"]) for r in rows})


if __name__ == "__main__":
    main()
