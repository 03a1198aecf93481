"""Hostile input, tried for real: each case runs ``python -m lenet_keras`` as a user (or
an attacker) would, and must cost one line ``Error: ...``, exit 2, no traceback, and
nothing written anywhere in the case's folder. The time each refusal took is printed in
a summary at the end (no threshold beyond a generous sanity bound).

Refusals that need no model must happen before TensorFlow is imported (a fraction of
a second): those cases run with a ``tensorflow`` package on the path that fails to
import. The few that need a trained model share one run (the ``tiny_run`` fixture)
and copy it.
"""

import gzip
import io
import json
import os
import shutil
import struct
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet_keras.sources import FASHION_MNIST_CLASSES
from lenet_keras.config import TrainConfig

# A refusal that takes longer than this is a hang or a bomb being defused too late.
SANITY_SECONDS = 60
TIMINGS = {}


# ---------------------------------------------------------------------------------------
# Tiny fixture files
# ---------------------------------------------------------------------------------------


def pixels(n, size=28, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size), dtype=np.uint8)


def npz(name, **overrides):
    """A small valid .npz (8 train / 4 test images, 2 classes) with some arrays replaced
    (None removes one)."""

    def build(root):
        arrays = dict(x_train=pixels(8), y_train=np.array([0, 1] * 4),
                      x_test=pixels(4, seed=1), y_test=np.array([0, 1, 0, 1]))
        arrays.update(overrides)
        np.savez(root / name, **{k: v for k, v in arrays.items() if v is not None})
    return build


def raw_file(name, content):
    def build(root):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return build


def npz_with_member_header(name, member, shape):
    """An .npz whose ``member`` .npy header claims ``shape`` (uint8) but holds 16 bytes:
    a memory bomb if the header is trusted before the data is read."""

    def build(root):
        npz("base.npz")(root)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": shape})
        with zipfile.ZipFile(root / "base.npz") as source, \
                zipfile.ZipFile(root / name, "w") as target:
            for item in source.namelist():
                if item != f"{member}.npy":
                    target.writestr(item, source.read(item))
            target.writestr(f"{member}.npy", header.getvalue() + bytes(16))
        (root / "base.npz").unlink()
    return build


def idx_bytes(array, magic_type=0x08):
    array = np.asarray(array)
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def idx_folder(name, labels_txt=None, **overrides):
    """A folder of gzipped IDX files (8 train / 4 test images, digits 0-9) with some
    files' bytes replaced."""

    def build(root):
        folder = root / name
        folder.mkdir()
        files = {
            "train-images-idx3-ubyte": idx_bytes(pixels(8)),
            "train-labels-idx1-ubyte": idx_bytes(np.arange(8) % 2),
            "t10k-images-idx3-ubyte": idx_bytes(pixels(4, seed=1)),
            "t10k-labels-idx1-ubyte": idx_bytes(np.arange(4) % 2),
        }
        files.update({k.replace("_", "-"): v for k, v in overrides.items()})
        for file, content in files.items():
            (folder / f"{file}.gz").write_bytes(gzip.compress(content, compresslevel=1))
        if labels_txt is not None:
            (folder / "labels.txt").write_bytes(labels_txt)
    return build


def idx_header(dims, magic_type=0x08):
    return bytes([0, 0, magic_type, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def png(path, array=None, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = pixels(1, 32)[0] if array is None else array
    Image.fromarray(array, mode).save(path)


def image_folder(name, classes=("cats", "dogs"), per_class=5, test=None):
    """root/name/<class>/<i>.png; ``test`` classes go under train/ and test/."""

    def build(root):
        base = root / name
        if test is None:
            for label in classes:
                for i in range(per_class):
                    png(base / label / f"{i}.png")
        else:
            for label in classes:
                for i in range(per_class):
                    png(base / "train" / label / f"{i}.png")
            (base / "test").mkdir(parents=True)
            for label, count in test.items():
                (base / "test" / label).mkdir()
                for i in range(count):
                    png(base / "test" / label / f"{i}.png")
    return build


def huge_png(width, height):
    """A valid 8-bit grayscale PNG of width x height zeros: ~150 kB on disk, width*height
    bytes once decoded."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


HUGE_PNG = []  # built once: 12000 x 12000, 144 MB decoded


def huge_png_bytes():
    if not HUGE_PNG:
        HUGE_PNG.append(huge_png(12000, 12000))
    return HUGE_PNG[0]


def folder_of_huge_pngs(name):
    def build(root):
        for label in ("cats", "dogs"):
            (root / name / label).mkdir(parents=True)
            (root / name / label / "big.png").write_bytes(huge_png_bytes())
    return build


def symlinked_class(name, target):
    """A dataset whose 'dogs' class folder is a symlink to ``target`` (a path, or a
    callable of the root for a folder made beside the dataset)."""

    def build(root):
        image_folder(name, classes=("cats",))(root)
        destination = target(root) if callable(target) else Path(target)
        (root / name / "dogs").symlink_to(destination, target_is_directory=True)
    return build


def outside_images(root):
    outside = root / "elsewhere"
    for i in range(3):
        png(outside / f"{i}.png")
    return outside


def file_symlinks_outside(name):
    def build(root):
        image_folder(name)(root)
        png(root / "secret" / "photo.png")
        (root / name / "dogs" / "linked.png").symlink_to(root / "secret" / "photo.png")
    return build


def deep_folder(name, depth=40):
    def build(root):
        for label in ("cats", "dogs"):
            deep = root / name / label
            for level in range(depth):
                deep = deep / f"d{level}"
            png(deep / "0.png")
    return build


def folder_of_text_files(name, count=1100):
    def build(root):
        image_folder(name)(root)
        notes = root / name / "cats" / "notes"
        notes.mkdir()
        for i in range(count):
            (notes / f"{i}.txt").write_bytes(b"")
    return build


def weird_class_name(name, label):
    def build(root):
        image_folder(name, classes=("cats", label))(root)
    return build


def run_folder(name, config=None, **files):
    """A run directory as fit leaves it, without TensorFlow: config.json (``config``: a
    TrainConfig, or raw text), labels.txt, a model.keras that is not a model, plus
    ``files`` (name -> text)."""

    def build(root):
        folder = root / name
        folder.mkdir()
        text = config if isinstance(config, str) else (config or TrainConfig()).to_json()
        (folder / "config.json").write_text(text)
        (folder / "labels.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
        (folder / "model.keras").write_bytes(b"PK\x03\x04 not a model")
        for file, content in files.items():
            (folder / file.replace("_", ".")).write_text(content)
    return build


def finished_run(name, dataset):
    """A finished run (config + metrics) that --overwrite would replace."""
    return run_folder(name, TrainConfig(dataset=dataset), metrics_json='{"test_accuracy": 0.5}')


def fit_args(run="run", *extra):
    return ["fit", "--run-dir", f"{{root}}/{run}", "--epochs", "1", *extra]


def several(*builders):
    def build(root):
        for builder in builders:
            builder(root)
    return build


@dataclass
class Case:
    id: str
    args: list
    expect: str  # a fragment of the one error line (case-insensitive)
    setup: object = None  # callable(root) that writes the case's files
    needs_run: bool = False  # copies the trained tiny run to {root}/trained
    copy_fixture: str = None  # a folder fixture copied to {root}/<its name>


NPZ = "{root}/data.npz"
IDX = "{root}/idx"
FOLDER = "{root}/photos"
ONE_LINE_CASES = [
    # --- .npz: the file itself --------------------------------------------------------
    Case("npz-zero-bytes", fit_args("run", "--dataset", NPZ), "cannot read", raw_file("data.npz", b"")),
    Case("npz-text", fit_args("run", "--dataset", NPZ), "cannot read", raw_file("data.npz", b"hello")),
    Case("npz-no-arrays", fit_args("run", "--dataset", NPZ), "lacks arrays",
         lambda root: np.savez(root / "data.npz")),
    Case("npz-pickled-objects", fit_args("run", "--dataset", NPZ), "pickle",
         npz("data.npz", x_train=np.array([object()] * 8, dtype=object))),
    Case("npz-header-bomb", fit_args("run", "--dataset", NPZ), "too large",
         npz_with_member_header("data.npz", "x_train", (10**6, 1000, 1000))),
    # --- .npz: labels -----------------------------------------------------------------
    Case("npz-label-1e9", fit_args("run", "--dataset", NPZ), "label",
         npz("data.npz", y_train=np.array([0, 1] * 3 + [0, 10**9]))),
    Case("npz-label-negative", fit_args("run", "--dataset", NPZ), "negative",
         npz("data.npz", y_test=np.array([0, 1, -1, 1]))),
    Case("npz-label-nan", fit_args("run", "--dataset", NPZ), "nan",
         npz("data.npz", y_train=np.array([0, 1] * 3 + [np.nan, 1]))),
    Case("npz-label-fraction", fit_args("run", "--dataset", NPZ), "whole",
         npz("data.npz", y_train=np.array([0, 1] * 3 + [0.5, 1]))),
    Case("npz-label-one-hot", fit_args("run", "--dataset", NPZ), "one-hot",
         npz("data.npz", y_train=np.eye(2)[[0, 1] * 4])),
    Case("npz-label-strings", fit_args("run", "--dataset", NPZ), "integer",
         npz("data.npz", y_train=np.array(["cat", "dog"] * 4))),
    Case("npz-labels-shorter", fit_args("run", "--dataset", NPZ), "7 labels for 8 images",
         npz("data.npz", y_train=np.array([0, 1] * 3 + [0]))),
    Case("npz-test-labels-shorter", fit_args("run", "--dataset", NPZ), "3 labels for 4 images",
         npz("data.npz", y_test=np.array([0, 1, 0]))),
    Case("npz-one-class", fit_args("run", "--dataset", NPZ), "at least 2 classes",
         npz("data.npz", y_train=np.zeros(8, int), y_test=np.zeros(4, int))),
    Case("npz-class-names-short", fit_args("run", "--dataset", NPZ), "class_names",
         npz("data.npz", y_train=np.array([0, 1, 2, 3] * 2), class_names=np.array(["a", "b"]))),
    Case("npz-class-names-duplicate", fit_args("run", "--dataset", NPZ), "duplicate",
         npz("data.npz", class_names=np.array(["a", "a"]))),
    Case("npz-class-names-newline", fit_args("run", "--dataset", NPZ), "line break",
         npz("data.npz", class_names=np.array(["a\nb", "c"]))),
    Case("npz-class-names-empty", fit_args("run", "--dataset", NPZ), "empty",
         npz("data.npz", class_names=np.array(["", "b"]))),
    Case("npz-class-names-2d", fit_args("run", "--dataset", NPZ), "class_names",
         npz("data.npz", class_names=np.array([["a", "b"]]))),
    # --- .npz: pixels -----------------------------------------------------------------
    Case("npz-pixels-nan", fit_args("run", "--dataset", NPZ), "nan",
         npz("data.npz", x_train=np.full((8, 28, 28), np.nan, np.float32))),
    Case("npz-pixels-inf", fit_args("run", "--dataset", NPZ), "infinite",
         npz("data.npz", x_test=np.full((4, 28, 28), np.inf))),
    Case("npz-pixels-negative", fit_args("run", "--dataset", NPZ), "negative",
         npz("data.npz", x_train=np.full((8, 28, 28), -3.0))),
    Case("npz-pixels-over-255-float", fit_args("run", "--dataset", NPZ), "255",
         npz("data.npz", x_train=np.full((8, 28, 28), 300.0))),
    Case("npz-pixels-over-255-int", fit_args("run", "--dataset", NPZ), "255",
         npz("data.npz", x_train=np.full((8, 28, 28), 4000, np.int16))),
    Case("npz-pixels-strings", fit_args("run", "--dataset", NPZ), "numbers",
         npz("data.npz", x_train=np.full((8, 28, 28), "a"))),
    Case("npz-pixels-complex", fit_args("run", "--dataset", NPZ), "numbers",
         npz("data.npz", x_train=np.ones((8, 28, 28), np.complex64))),
    Case("npz-pixels-2d", fit_args("run", "--dataset", NPZ), "shape",
         npz("data.npz", x_train=np.zeros((8, 784), np.uint8))),
    Case("npz-test-size-differs", fit_args("run", "--dataset", NPZ), "x_test",
         npz("data.npz", x_test=pixels(4, 32))),
    Case("npz-test-empty", fit_args("run", "--dataset", NPZ), "no test images",
         npz("data.npz", x_test=np.zeros((0, 28, 28), np.uint8), y_test=np.zeros(0, int))),
    Case("npz-train-empty", fit_args("run", "--dataset", NPZ), "no training images",
         npz("data.npz", x_train=np.zeros((0, 28, 28), np.uint8), y_train=np.zeros(0, int))),
    # --- IDX folders ------------------------------------------------------------------
    Case("idx-label-count-differs", fit_args("run", "--dataset", IDX), "7 labels for 8 images",
         idx_folder("idx", train_labels_idx1_ubyte=idx_bytes(np.arange(7) % 2))),
    Case("idx-test-label-count-differs", fit_args("run", "--dataset", IDX), "5 labels for 4 images",
         idx_folder("idx", t10k_labels_idx1_ubyte=idx_bytes(np.arange(5) % 2))),
    Case("idx-label-out-of-range", fit_args("run", "--dataset", IDX), "label",
         idx_folder("idx", t10k_labels_idx1_ubyte=idx_bytes([0, 1, 0, 200]))),
    Case("idx-header-bomb", fit_args("run", "--dataset", IDX), "too large",
         idx_folder("idx", train_images_idx3_ubyte=idx_header([60000, 40000, 40000]) + bytes(1 << 20))),
    Case("idx-255-dimensions", fit_args("run", "--dataset", IDX), "dimensions",
         idx_folder("idx", train_images_idx3_ubyte=idx_header([1] * 255))),
    Case("idx-labels-2d", fit_args("run", "--dataset", IDX), "dimensions",
         idx_folder("idx", train_labels_idx1_ubyte=idx_bytes(np.zeros((8, 2))))),
    Case("idx-float-type", fit_args("run", "--dataset", IDX), "unsigned-byte",
         idx_folder("idx", train_images_idx3_ubyte=idx_header([8, 28, 28], 0x0D) + bytes(8 * 784 * 4))),
    Case("idx-trailing-garbage", fit_args("run", "--dataset", IDX), "corrupt",
         idx_folder("idx", t10k_labels_idx1_ubyte=idx_bytes([0, 1, 0, 1]) + b"junk")),
    Case("idx-truncated-gzip", fit_args("run", "--dataset", IDX), "cannot read",
         several(idx_folder("idx"), lambda root: (root / "idx" / "t10k-labels-idx1-ubyte.gz").write_bytes(
             gzip.compress(idx_bytes([0, 1, 0, 1]))[:-12]))),
    Case("idx-labels-txt-short", fit_args("run", "--dataset", IDX), "labels.txt",
         idx_folder("idx", labels_txt=b"T-shirt top\n")),
    Case("idx-labels-txt-duplicate", fit_args("run", "--dataset", IDX), "duplicate",
         idx_folder("idx", labels_txt=b"shirt\nshirt\n")),
    Case("idx-labels-txt-blank-line", fit_args("run", "--dataset", IDX), "empty",
         idx_folder("idx", labels_txt=b"shirt\n\ntrouser\n")),
    Case("idx-labels-txt-binary", fit_args("run", "--dataset", IDX), "utf-8",
         idx_folder("idx", labels_txt=b"\xff\xfe\x00junk\n\x80\n")),
    Case("idx-missing-test-files", fit_args("run", "--dataset", IDX), "lacks",
         several(idx_folder("idx"), lambda root: (root / "idx" / "t10k-images-idx3-ubyte.gz").unlink())),
    # --- image folders ----------------------------------------------------------------
    Case("folder-root-of-host", fit_args("run", "--dataset", "/"), "not an image dataset"),
    Case("folder-class-links-to-root", fit_args("run", "--dataset", FOLDER), "outside",
         symlinked_class("photos", "/")),
    Case("folder-class-links-outside", fit_args("run", "--dataset", FOLDER), "outside",
         symlinked_class("photos", outside_images)),
    Case("folder-file-links-outside", fit_args("run", "--dataset", FOLDER), "outside",
         file_symlinks_outside("photos")),
    Case("folder-nested-40-deep", fit_args("run", "--dataset", FOLDER), "deep",
         deep_folder("photos")),
    Case("folder-1100-text-files", fit_args("run", "--dataset", FOLDER), "not an image dataset",
         folder_of_text_files("photos")),
    Case("folder-train-links-outside", fit_args("run", "--dataset", FOLDER), "outside",
         several(image_folder("elsewhere", test={"cats": 1, "dogs": 1}),
                 lambda root: (root / "photos").mkdir(),
                 lambda root: (root / "photos" / "train").symlink_to(root / "elsewhere" / "train"))),
    Case("folder-only-huge-pngs", fit_args("run", "--dataset", FOLDER), "pixels",
         folder_of_huge_pngs("photos")),
    Case("folder-class-name-newline", fit_args("run", "--dataset", FOLDER), "line break",
         weird_class_name("photos", "do\ngs")),
    Case("folder-class-name-line-separator", fit_args("run", "--dataset", FOLDER), "line break",
         weird_class_name("photos", "do\u2028gs")),
    Case("folder-class-name-blank", fit_args("run", "--dataset", FOLDER), "empty",
         weird_class_name("photos", "   ")),
    Case("folder-empty-test", fit_args("run", "--dataset", FOLDER), "test",
         image_folder("photos", test={})),
    Case("folder-test-class-unknown", fit_args("run", "--dataset", FOLDER), "birds",
         image_folder("photos", test={"cats": 1, "dogs": 1, "birds": 1})),
    Case("folder-one-image-per-class", fit_args("run", "--dataset", FOLDER), "no test images",
         image_folder("photos", per_class=1)),
    Case("folder-val-split-0.999", fit_args("run", "--dataset", FOLDER, "--val-split", "0.999"),
         "no training images", image_folder("photos", per_class=3)),
    # --- options ----------------------------------------------------------------------
    Case("lr-nan", fit_args("run", "--learning-rate", "nan"), "learning_rate"),
    Case("lr-inf", fit_args("run", "--learning-rate", "inf"), "learning_rate"),
    Case("lr-negative", fit_args("run", "--learning-rate", "-1"), "learning_rate"),
    Case("val-split-nan", fit_args("run", "--val-split", "nan"), "val_split"),
    Case("seed-negative", fit_args("run", "--seed", "-1"), "seed"),
    Case("seed-2**64", fit_args("run", "--seed", str(2**64)), "seed"),
    Case("image-size-100000", fit_args("run", "--image-size", "100000"), "image_size"),
    Case("batch-size-2**40", fit_args("run", "--batch-size", str(2**40)), "batch_size"),
    Case("epochs-10**12", fit_args("run", "--epochs", str(10**12)), "epochs"),
    Case("early-stopping-negative", fit_args("run", "--early-stopping", "-1"), "early_stopping"),
    Case("run-dir-300-chars", fit_args("r" * 300), "too long"),
    Case("run-dir-path-5000-chars", fit_args("/".join(["d" * 100] * 50)), "too long"),
    Case("run-dir-under-a-file", fit_args("notes.txt/run"), "file",
         raw_file("notes.txt", b"hello")),
    Case("dataset-is-a-device", fit_args("run", "--dataset", "/dev/null"), "neither a file nor a folder"),
    Case("dataset-is-a-text-file", fit_args("run", "--dataset", "{root}/notes.txt"), "not an .npz",
         raw_file("notes.txt", b"hello")),
    # --- run directories --------------------------------------------------------------
    Case("run-config-is-a-list", fit_args("run"), "config.json", run_folder("run", "[1, 2]")),
    Case("run-config-garbage", fit_args("run"), "config.json", run_folder("run", "{oops")),
    Case("run-config-wrong-types", fit_args("run"), "config.json",
         run_folder("run", json.dumps({"epochs": "many", "model": 7}))),
    Case("run-history-garbage", ["fit", "--run-dir", "{root}/run", "--epochs", "15"], "history.csv",
         run_folder("run", history_csv="epoch,loss\nnot,a number\n")),
    Case("run-metrics-garbage", ["fit", "--run-dir", "{root}/run"], "metrics.json",
         run_folder("run", metrics_json="{nope")),
    Case("overwrite-finished-run-with-bad-data",
         ["fit", "--run-dir", "{root}/run", "--overwrite", "--dataset", NPZ], "label",
         several(npz("data.npz", y_train=np.array([0, 1] * 3 + [0, -5])), finished_run("run", "x"))),
    Case("plot-history-garbage", ["plot-history", "--run-dir", "{root}/run"], "history.csv",
         run_folder("run", history_csv="epoch,loss\n1,abc\n")),
    Case("evaluate-config-is-a-list", ["evaluate", "--run-dir", "{root}/run"], "config.json",
         run_folder("run", "[1, 2]")),
    Case("evaluate-labels-txt-duplicate", ["evaluate", "--run-dir", "{root}/run"], "duplicate",
         run_folder("run", labels_txt="a\na\n")),
    # --- export destinations (checked before the model is loaded) ----------------------
    Case("export-out-holds-user-report-json",
         ["export", "--run-dir", "{root}/run", "--out", "{root}/mine"], "not an export",
         several(run_folder("run"), raw_file("mine/report.json", b'{"my": "results"}'),
                 raw_file("mine/thesis.tex", b"keep me"))),
    Case("export-out-holds-user-saved-model",
         ["export", "--run-dir", "{root}/run", "--out", "{root}/mine"], "not an export",
         several(run_folder("run"), raw_file("mine/saved_model/saved_model.pb", b"mine"),
                 raw_file("mine/notes.txt", b"keep me"))),
    Case("export-out-is-a-file", ["export", "--run-dir", "{root}/run", "--out", "{root}/notes.txt"],
         "not an export", several(run_folder("run"), raw_file("notes.txt", b"hello"))),
    Case("export-labels-txt-newline-name", ["export", "--run-dir", "{root}/run"], "labels.txt",
         run_folder("run", labels_txt="a\n\nb\n")),
    Case("predict-without-any-run", ["predict", "{root}/img.png"], "no runs found",
         lambda root: png(root / "img.png")),
    Case("predict-garbage-tflite", ["predict", "{root}/img.png", "--model", "{root}/m.tflite"],
         "cannot load", several(lambda root: png(root / "img.png"),
                                raw_file("m.tflite", b"TFL3" + bytes(range(256)) * 4))),
    # --- needing a trained model (TensorFlow loads) ---------------------------------------
    Case("predict-lambda-keras-without-unsafe",
         ["predict", "{root}/img.png", "--model", "{root}/lambda/model.keras"], "--unsafe",
         lambda root: png(root / "img.png"), copy_fixture="lambda_model"),
    Case("export-labels-txt-shorter-than-outputs",
         ["export", "--run-dir", "{root}/trained", "--out", "{root}/out"], "labels.txt",
         lambda root: (root / "trained" / "labels.txt").write_text("a\nb\n"), needs_run=True),
    Case("predict-labels-txt-shorter-than-outputs",
         ["predict", "{root}/img.png", "--model", "{root}/trained/model.keras"], "labels.txt",
         several(lambda root: (root / "trained" / "labels.txt").write_text("a\nb\n"),
                 lambda root: png(root / "img.png")), needs_run=True),
    Case("predict-huge-png", ["predict", "{root}/big.png", "--model", "{root}/trained/model.keras"],
         "pixels", lambda root: (root / "big.png").write_bytes(huge_png_bytes()), needs_run=True),
    Case("predict-foreign-saved-model", ["predict", "{root}/img.png", "--model", "{root}/evil"],
         "--unsafe", lambda root: png(root / "img.png"), copy_fixture="evil_saved_model"),
    Case("evaluate-dataset-bad-labels",
         ["evaluate", "--run-dir", "{root}/trained", "--dataset", NPZ], "label",
         npz("data.npz", y_test=np.array([0, 1, 0, 77]), class_names=np.array(FASHION_MNIST_CLASSES)),
         needs_run=True),
]


# ---------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------


def snapshot(root):
    """Every entry under root (symlinks not followed): path -> (type, size, mtime)."""
    entries = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            entries[str(path.relative_to(root))] = (info.st_mode >> 12, info.st_size, info.st_mtime_ns)
    return entries


@pytest.fixture(scope="module")
def evil_saved_model(tmp_path_factory):
    """A SavedModel with a `serve` endpoint that writes a file when it runs."""
    from lenet_keras.quiet import import_tensorflow

    tf = import_tensorflow()
    folder = tmp_path_factory.mktemp("evil")

    class Evil(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
        def serve(self, images):
            tf.io.write_file("pwned", "pwned")  # relative: lands in the case folder
            return tf.zeros([tf.shape(images)[0], 10])

    module = Evil()
    tf.saved_model.save(module, str(folder / "evil"), signatures={"serving_default": module.serve})
    return folder / "evil"


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory):
    """A .keras model with a Lambda layer (Python code): refused without --unsafe."""
    from lenet_keras.quiet import import_keras

    keras = import_keras()
    folder = tmp_path_factory.mktemp("lambda_model") / "lambda"
    folder.mkdir()
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(lambda x: x[:, :2, 0, 0])(inputs)
    keras.Model(inputs, outputs).save(folder / "model.keras")
    return folder


@pytest.fixture(scope="module", autouse=True)
def timing_summary(request):
    yield
    if not TIMINGS:
        return
    times = sorted(TIMINGS.values())
    lines = [f"time to refuse, {len(times)} hostile cases (s): median {times[len(times) // 2]:.2f}, "
             f"max {times[-1]:.2f}, total {sum(times):.1f}"]
    lines += [f"  {seconds:6.2f}  {case}" for case, seconds in
              sorted(TIMINGS.items(), key=lambda item: -item[1])]
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def without_tensorflow(tmp_path_factory):
    """PYTHONPATH under which ``import tensorflow`` fails loudly: the refusals that need
    no model must come before TensorFlow (and Keras, which imports it) loads."""
    guard = tmp_path_factory.mktemp("guard")
    (guard / "tensorflow").mkdir()
    (guard / "tensorflow" / "__init__.py").write_text(
        'raise ImportError("TensorFlow was imported before the input was refused")\n')
    return {"PYTHONPATH": f"{guard}{os.pathsep}{Path(__file__).resolve().parents[1]}"}


@pytest.mark.parametrize("case", ONE_LINE_CASES, ids=[c.id for c in ONE_LINE_CASES])
def test_hostile_input_costs_one_line_exit_2_and_writes_nothing(case, tmp_path, run_cli, request):
    root = tmp_path / "case"
    root.mkdir()
    if case.needs_run:
        tiny_run = request.getfixturevalue("tiny_run")
        shutil.copytree(tiny_run, root / "trained")
    if case.copy_fixture:
        folder = request.getfixturevalue(case.copy_fixture)
        shutil.copytree(folder, root / folder.name)
    if case.setup is not None:
        case.setup(root)
    args = [a.format(root=root) for a in case.args]
    before = snapshot(root)

    started = time.perf_counter()
    needs_tensorflow = case.needs_run or case.copy_fixture
    env = None if needs_tensorflow else request.getfixturevalue("without_tensorflow")
    result = run_cli(*args, cwd=root, timeout=SANITY_SECONDS * 5, env=env)
    TIMINGS[case.id] = elapsed = time.perf_counter() - started

    output = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2, "\n".join(output[-20:])
    assert len(output) == 1 and output[0].startswith("Error: "), "\n".join(output[-20:])
    assert case.expect.lower() in output[0].lower(), output[0]
    assert "Traceback" not in output[0]
    assert snapshot(root) == before
    assert elapsed < SANITY_SECONDS


# ---------------------------------------------------------------------------------------
# Beyond one line: what must still work, or be recovered, after hostile input
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_repeated_ctrl_c_at_random_moments_always_resumes(tmp_path):
    """Ten SIGINTs at random moments of training (saving states included), each followed
    by a rerun: every rerun resumes where the last good state left off, and the run
    ends with one history row per epoch."""
    import random
    import signal
    import subprocess
    import sys

    from lenet_keras.runs import read_history
    from tests.conftest import ROOT

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x_train=pixels(80), y_train=rng.integers(0, 2, 80),
             x_test=pixels(16, seed=1), y_test=np.arange(16) % 2)
    epochs = 14
    # --debug: a failed rerun shows its traceback (one intermittent failure, "ValueError:
    # None values not supported", was seen once in a full run and never reproduced alone).
    command = [sys.executable, "-m", "lenet_keras", "--debug", "fit", "--dataset",
               str(tmp_path / "data.npz"), "--model", "lenet5_mini", "--epochs", str(epochs),
               "--batch-size", "16", "--run-dir", str(tmp_path / "run")]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    chooser = random.Random(1)
    interrupts, progress, in_save_window = 0, [], 0
    while interrupts < 10:
        done_before = len(read_history(tmp_path / "run"))
        process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 300
        # Interrupt at a random moment soon after this process logs an epoch: while the
        # best model and the resume state are being saved, or in the next epoch.
        while process.poll() is None and len(read_history(tmp_path / "run")) <= done_before:
            assert time.time() < deadline, "no epoch finished in 300 s"
            time.sleep(0.005)
        if process.poll() is None:
            time.sleep(chooser.uniform(0, 0.25))
            process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=300)
        traceback = [line for line in errors.splitlines() if 'File "' in line or "Error" in line]
        # 130: KeyboardInterrupt handled; -SIGINT: the signal's default action, when it
        # lands as the interpreter shuts down after the run (the next rerun finds it done).
        assert process.returncode in (0, 130, -signal.SIGINT), (
            f"rerun {interrupts} failed ({process.returncode}): {traceback[-30:]}")
        rows = read_history(tmp_path / "run")
        # The resumed process redid at most the epoch whose state was being saved.
        assert len(rows) >= done_before and [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
        progress.append(len(rows))
        if process.returncode == 0:
            break
        states = [json.loads(p.read_text())["epoch"] for p in (tmp_path / "run" / "backup").glob("epoch-*/state.json")]
        in_save_window += len(rows) > max(states, default=0)  # history written, state not yet
        interrupts += 1
    final = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr[-2000:]
    assert [r["epoch"] for r in read_history(tmp_path / "run")] == list(range(1, epochs + 1))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"] == epochs
    print(f"history rows after each of {interrupts} interrupts: {progress}; "
          f"{in_save_window} interrupted between the history row and the resume state")


def _tiny_model():
    from lenet_keras.quiet import import_keras

    keras = import_keras()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _fit_with_states(backup, epochs, initial_model=None):
    from lenet_keras.callbacks import ResumeState

    model = initial_model or _tiny_model()
    state = ResumeState(backup)
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, np.arange(32) % 2, epochs=epochs, verbose=0, callbacks=[state])
    return model, state


def test_resume_state_falls_back_to_the_previous_state_on_any_damage(tmp_path):
    backup = tmp_path / "backup"
    model, _ = _fit_with_states(backup, 3)
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-000002", "epoch-000003"]
    epoch2 = _tiny_model()
    epoch2.optimizer.build(epoch2.trainable_variables)
    epoch2.load_weights(backup / "epoch-000002" / "state.weights.h5")
    # A valid-looking HDF5 cut short (what Ctrl-C did to BackupAndRestore's file).
    newest = backup / "epoch-000003" / "state.weights.h5"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    resumed, state = _fit_with_states(backup, 2)  # epochs=2: the restore alone, no training
    assert state.restored_epoch == 2
    for a, b in zip(resumed.get_weights(), epoch2.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_resume_state_trains_from_scratch_when_every_state_is_damaged(tmp_path):
    backup = tmp_path / "backup"
    _fit_with_states(backup, 2)
    for weights in backup.glob("*/state.weights.h5"):
        weights.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    fresh = _tiny_model()
    before = [w.copy() for w in fresh.get_weights()]
    from lenet_keras.callbacks import ResumeState

    state = ResumeState(backup)
    state.set_model(fresh)
    state.on_train_begin()
    assert state.restored_epoch == 0
    for a, b in zip(fresh.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_resume_state_reads_what_keras_backup_and_restore_left(tmp_path):
    from lenet_keras.quiet import import_keras

    keras = import_keras()
    model = _tiny_model()
    x = np.zeros((8, 4), "float32")
    model.fit(x, np.arange(8) % 2, epochs=3, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)])
    _, state = _fit_with_states(tmp_path / "backup", 3)
    assert state.restored_epoch == 3


def test_sixteen_bit_and_float_images_are_scaled_or_refused(tmp_path):
    from lenet_keras.sources import open_image
    from lenet_keras.errors import BadInput

    wide = np.array([[0, 32768, 65535, 257]], np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").mode.startswith("I;16")
    rgb, gray = open_image(tmp_path / "wide.png", 1, 4)
    assert gray and rgb[0, :, 0].tolist() == [0, 128, 255, 1]  # not clipped to white
    Image.fromarray(np.array([[0.0, np.nan]], np.float32)).save(tmp_path / "nan.tiff")
    with pytest.raises(BadInput, match="NaN"):
        open_image(tmp_path / "nan.tiff", 1, 2)


def test_labels_txt_is_read_one_name_per_line(tmp_path):
    from lenet_keras.sources import load_idx_folder

    idx_folder("idx", labels_txt=b"T-shirt top\r\nankle boot\n\n")(tmp_path)
    assert load_idx_folder(tmp_path / "idx").class_names == ["T-shirt top", "ankle boot"]


def test_idx_gz_is_refused_from_its_header_without_inflating_the_rest(tmp_path, monkeypatch):
    from lenet_keras import sources
    from lenet_keras.errors import BadInput

    idx_folder("idx", train_images_idx3_ubyte=idx_header([60000, 40000, 40000]) + bytes(64 << 20))(tmp_path)
    inflated = []
    real_open = gzip.open

    class Counting:
        def __init__(self, handle):
            self.handle = handle

        def read(self, size=-1):
            chunk = self.handle.read(size)
            inflated.append(len(chunk))
            return chunk

        def close(self):
            self.handle.close()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(sources.gzip, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    with pytest.raises(BadInput, match="too large"):
        sources.load_idx_folder(tmp_path / "idx")
    assert sum(inflated) < 1024  # headers only, of 64 MB behind them


def test_export_replaces_only_its_own_exports_and_clears_its_leftovers(tiny_run, tmp_path):
    import subprocess

    from lenet_keras.errors import BadInput
    from lenet_keras.export import export_run
    from lenet_keras.exports import MARKER

    out = tmp_path / "out"
    quiet = dict(formats=(), progress=False, log=lambda *_: None, latency_number=2)
    export_run(tiny_run, out, **quiet)
    assert (out / MARKER).is_file() and (out / "saved_model").is_dir()
    dead = subprocess.Popen(["true"])  # a process id that has ended
    dead.wait()
    leftover = tmp_path / ".out.tmp-abcd1234"  # an interrupted export of this package
    leftover.mkdir()
    (leftover / MARKER).write_text(json.dumps({"package": "lenet_keras", "pid": dead.pid}))
    lookalike = tmp_path / ".out.tmp-zzzz9999"  # same name pattern, not ours
    lookalike.mkdir()
    (lookalike / "mine.txt").write_text("keep me")
    linked = tmp_path / ".out.tmp-link0000"
    linked.symlink_to(leftover, target_is_directory=True)

    export_run(tiny_run, out, **quiet)  # a previous export of ours: replaced
    assert not leftover.exists() and (lookalike / "mine.txt").exists() and linked.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".out.tmp-zzzz9999", ".out.tmp-link0000", "out"])

    (out / "notes.txt").write_text("mine")  # a file the user added to the export
    with pytest.raises(BadInput, match="files added to it .*notes.txt"):
        export_run(tiny_run, out, **quiet)
    assert (out / "notes.txt").read_text() == "mine"


def test_evaluate_reports_the_corrupt_files_it_skipped(tiny_run, tmp_path, invoke):
    from lenet_keras.sources import load_arrays
    from lenet_keras.runs import read_labels

    run = tmp_path / "run"  # evaluate writes its figures into the run
    shutil.copytree(tiny_run, run)
    arrays = load_arrays(None)
    folder = tmp_path / "photos"
    for label, name in enumerate(read_labels(run)):
        for i in np.flatnonzero(arrays.y_test == label)[:1 if name == "bag" else 2]:
            png(folder / name / f"{i}.png", arrays.x_test[i, :, :, 0])
    (folder / "bag" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = invoke("evaluate", "--run-dir", run, "--dataset", folder)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable file(s): " in result.output and "broken.png" in result.output
    assert "on 19 images" in result.output  # the whole folder: one bag is enough


def test_labels_inside_a_tflite_are_read_no_further_than_a_megabyte():
    from lenet_keras.errors import BadInput
    from lenet_keras.metadata import embedded_labels

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("labels.txt", b"a\n" * (4 << 20))  # 8 MB inflated, ~8 kB stored
    with pytest.raises(BadInput, match="larger than 1,000,000 bytes"):
        embedded_labels(b"TFL3" + bytes(60) + buffer.getvalue())


@pytest.mark.parametrize("name", __import__("lenet_keras.registry").registry.list_models())
def test_every_registered_model_exports_a_saved_model_predict_accepts(name, tmp_path):
    """The op allow-list covers every registry model (grayscale and RGB), so a new
    variant cannot make its own exports need --unsafe."""
    from lenet_keras.convert import export_saved_model
    from lenet_keras.models import build_model
    from lenet_keras.runtimes import foreign_saved_model_ops

    for channels in (1, 3):
        export_saved_model(build_model(name, (32, 32, channels), 10), tmp_path / f"c{channels}")
        assert foreign_saved_model_ops(tmp_path / f"c{channels}") == []
