"""Dataset sources: files (and TFDS names) -> uint8 image arrays and class names.

Sources (``--dataset``):
    (nothing)          the embedded Fashion-MNIST sample shipped in ``lenet_keras/sample/``
    PATH.npz           arrays ``x_train, y_train, x_test, y_test`` (optional ``class_names``)
    PATH/ (IDX)        MNIST-format ``{train,t10k}-{images,labels}-idx?-ubyte[.gz]`` files,
                       e.g. /usr/share/datasets/fashion-mnist from Debian
    PATH/ (images)     one subfolder per class, optionally under ``train/`` and ``test/``
    NAME               any TFDS image classification dataset (mnist, cifar10, food101, ...)

This module only reads: local sources into memory as uint8 arrays (``load_arrays``),
single images for ``predict`` and ``serve`` (``open_image``), and a TFDS builder, prepared
(``tfds_builder``, ``prepare_tfds``). Turning them into batches for training is
``pipelines.py``'s job.
"""

import difflib
import gzip
import os
import re
import socket
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet_keras.checks import (
    MAX_IMAGE_PIXELS, check_class_names, check_data_bytes, check_labels, check_pixels,
    read_names_file,
)
from lenet_keras.backends import tensorflow_available
from lenet_keras.errors import BadInput, first_line
from lenet_keras.quiet import import_tensorflow, native_output_captured

SAMPLE_PATH = Path(__file__).parent / "sample" / "fashion_mnist_sample.npz"
SAMPLE_NAME = "fashion_mnist_sample"

FASHION_MNIST_CLASSES = [
    "t-shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
# Folder datasets without a test/ subfolder hold this much of each class out for testing.
FOLDER_TEST_FRACTION = 0.2
# Folder datasets have no native size: LeNet's 32x32 unless --image-size says otherwise.
DEFAULT_FOLDER_IMAGE_SIZE = 32
# A bounded walk of image folders (see FolderScan): the most files, the deepest nesting
# below a class folder, and how many non-image files may be met before the folder is
# taken for something that is not an image dataset (such as --dataset /).
MAX_FOLDER_FILES = 1_000_000
MAX_FOLDER_DEPTH = 8
MAX_OTHER_FILES = 1_000
IDX_PATTERN = re.compile(r"^(train|t10k)-(images|labels)[.-]idx[13]-ubyte(\.gz)?$")
# TFDS name examples for `cli.py datasets`; any TFDS image classification name works.
TFDS_EXAMPLES = {
    "mnist": "70k handwritten digits, 28x28 gray",
    "fashion_mnist": "70k Zalando clothing images, 28x28 gray",
    "kmnist": "70k cursive Japanese characters, 28x28 gray",
    "cifar10": "60k photos of 10 objects, 32x32 RGB",
    "cifar100": "60k photos of 100 objects, 32x32 RGB",
    "svhn_cropped": "house-number digits, 32x32 RGB",
    "food101": "101k food photos (with --positive-class hot_dog: Not Hotdog)",
    "cats_vs_dogs": "23k pet photos, 2 classes",
}


@dataclass
class ArraySplits:
    """A local source read into memory: uint8 images [N,H,W,C], int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    skipped_files: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Source detection
# ---------------------------------------------------------------------------------------


def source_kind(source):
    """'sample', 'npz', 'idx', 'folder' or 'tfds' for a ``--dataset`` value.

    Raises BadInput for a path that does not exist or holds no usable data.
    """
    if source in (None, "", "sample", SAMPLE_NAME):
        return "sample"
    path = Path(source).expanduser()
    looks_like_path = os.sep in source or source.startswith(".") or path.suffix == ".npz"
    if not path.exists():
        if looks_like_path:
            raise BadInput(f"dataset path '{source}' does not exist")
        return "tfds"
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        raise BadInput(
            f"dataset file '{source}' is not an .npz; pass an .npz, a folder of images "
            "or IDX files, or a TFDS name"
        )
    if not path.is_dir():
        raise BadInput(f"dataset path '{source}' is neither a file nor a folder")
    if _find_idx_files(path):
        return "idx"
    return "folder"


def dataset_name(source):
    """Short name used in run directory names, e.g. 'fashion-mnist' or 'cifar10'."""
    kind = source_kind(source)
    if kind == "sample":
        return SAMPLE_NAME
    if kind == "tfds":
        return source.split(":")[0].split("/")[0]
    return Path(source).expanduser().resolve().stem or "data"


# ---------------------------------------------------------------------------------------
# Local sources -> ArraySplits
# ---------------------------------------------------------------------------------------


def _npz_member_bytes(archive, path):
    """Bytes each array of an open .npz declares in its header, read before any array
    is (a 100-byte header can claim a terabyte)."""
    total = 0
    for name in archive.files:
        try:
            with archive.zip.open(f"{name}.npy") as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise BadInput(f"cannot read '{path}' as .npz: array {name}: {first_line(error)}") from None
        if dtype.hasobject:
            raise BadInput(f"'{path}' holds Python objects in {name} (pickled data), which are "
                           "never loaded; store numeric arrays")
        total += int(np.prod(shape, dtype=object)) * dtype.itemsize
    return total


def load_npz(path):
    """Arrays from an .npz with x_train, y_train, x_test, y_test (and class_names),
    checked: sizes from the headers first, then labels, pixels and names."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise BadInput(f"cannot read '{path}' as .npz: {first_line(error)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise BadInput(f"'{path}' is a single .npy array, not an .npz archive of "
                       "x_train, y_train, x_test, y_test")
    with archive:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(archive.files)
        if missing:
            raise BadInput(f"'{path}' lacks arrays {', '.join(sorted(missing))}")
        check_data_bytes(_npz_member_bytes(archive, path), f"'{path}'")
        try:
            arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise BadInput(f"cannot read '{path}' as .npz: {first_line(error)}") from None
    x_train = check_pixels(arrays["x_train"], f"x_train in '{path}'")
    x_test = check_pixels(arrays["x_test"], f"x_test in '{path}'")
    y_train = check_labels(arrays["y_train"], len(x_train), f"y_train in '{path}'")
    y_test = check_labels(arrays["y_test"], len(x_test), f"y_test in '{path}'")
    labels = np.concatenate([y_train, y_test])
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    if "class_names" in arrays:
        class_names = _npz_class_names(arrays["class_names"], f"class_names in '{path}'")
    else:
        _check_no_gaps(labels, num_classes, f"the labels in '{path}'")
        class_names = [str(i) for i in range(num_classes)]
    check_class_names(class_names, num_classes, f"class_names in '{path}'")
    return ArraySplits(x_train, y_train, x_test, y_test, class_names)


def _check_no_gaps(labels, num_classes, what):
    """BadInput when unnamed classes below the highest label have no image: a stray
    ``y = 12`` in a 10-class set would train a 13-class model with empty classes."""
    missing = np.setdiff1d(np.arange(num_classes), labels)
    if len(missing):
        shown = ", ".join(str(i) for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BadInput(f"{what} go up to {num_classes - 1} but no image has label {shown}; "
                       "renumber the classes 0, 1, 2, ... or add class_names naming each one")


def _npz_class_names(names, what):
    names = np.asarray(names)
    if names.ndim != 1:
        raise BadInput(f"{what} must be a 1-D array of names, got shape {names.shape}")
    if names.dtype.kind == "S":
        try:
            return [n.decode("utf-8") for n in names]
        except UnicodeDecodeError:
            raise BadInput(f"{what} holds names that are not UTF-8") from None
    if names.dtype.kind not in "Uiu":
        raise BadInput(f"{what} must hold text, got {names.dtype} values")
    return [str(n) for n in names]


def _find_idx_files(folder):
    """{('train'|'t10k', 'images'|'labels'): path} for MNIST-format files in folder."""
    found = {}
    for entry in Path(folder).iterdir():
        match = IDX_PATTERN.match(entry.name)
        if match and entry.is_file():
            found[(match.group(1), match.group(2))] = entry
    return found


def _read_exactly(handle, count, path):
    data = handle.read(count)
    if len(data) != count:
        raise BadInput(f"IDX file '{path}' is truncated or corrupt")
    return data


def read_idx_header(path, ndim=None):
    """(shape, open handle positioned at the data) of an IDX file; the caller closes
    the handle. Only the header is read (for a .gz: decompressed)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    handle = opener(path, "rb")
    try:
        magic = _read_exactly(handle, 4, path)
        if magic[:3] != b"\x00\x00\x08":
            raise BadInput(f"'{path}' is not an unsigned-byte IDX file")
        if ndim is not None and magic[3] != ndim:
            raise BadInput(f"IDX file '{path}' has {magic[3]} dimensions; "
                           f"{'images' if ndim == 3 else 'labels'} need {ndim}")
        dims = _read_exactly(handle, 4 * magic[3], path)
        shape = tuple(int.from_bytes(dims[i: i + 4], "big") for i in range(0, len(dims), 4))
        return shape, handle
    except BaseException:
        handle.close()
        raise


def read_idx(path, ndim=None):
    """An IDX array (the MNIST file format: magic, big-endian dims, then raw data).

    Streamed: the header is read and its size checked (``ndim`` dimensions, at most
    MAX_DATA_BYTES) before the data, and not a byte more than the header declares is
    decompressed, so a small .gz cannot inflate to gigabytes.
    """
    try:
        shape, handle = read_idx_header(path, ndim)
        with handle:
            size = int(np.prod(shape, dtype=object))
            check_data_bytes(size, f"IDX file '{path}' ({'x'.join(map(str, shape))})")
            data = _read_exactly(handle, size, path)
            if handle.read(1):
                raise BadInput(f"IDX file '{path}' is corrupt: more data than its header declares")
    except (OSError, EOFError, zlib.error) as error:
        raise BadInput(f"cannot read IDX file '{path}': {first_line(error)}") from None
    return np.frombuffer(data, np.uint8).reshape(shape)


def load_idx_folder(folder):
    """Arrays from a folder of MNIST-format IDX files (gz or raw).

    Class names: a ``labels.txt`` in the folder (one name per line), else
    Fashion-MNIST's when the folder name says so, else the digits.
    """
    files = _find_idx_files(folder)
    needed = [(split, kind) for split in ("train", "t10k") for kind in ("images", "labels")]
    missing = [f"{s}-{k}" for s, k in needed if (s, k) not in files]
    if missing:
        raise BadInput(f"IDX folder '{folder}' lacks {', '.join(missing)} files")
    total = 0
    for key in needed:  # all four headers before any data: the sum is bounded too
        try:
            shape, handle = read_idx_header(files[key], 3 if key[1] == "images" else 1)
        except (OSError, EOFError, zlib.error) as error:
            raise BadInput(f"cannot read IDX file '{files[key]}': {first_line(error)}") from None
        handle.close()
        total += int(np.prod(shape, dtype=object))
    check_data_bytes(total, f"IDX folder '{folder}'")
    arrays = {key: read_idx(files[key], 3 if key[1] == "images" else 1) for key in needed}
    x_train = check_pixels(arrays["train", "images"], f"'{files['train', 'images']}'")
    x_test = check_pixels(arrays["t10k", "images"], f"'{files['t10k', 'images']}'")
    y_train = check_labels(arrays["train", "labels"], len(x_train), f"'{files['train', 'labels']}'")
    y_test = check_labels(arrays["t10k", "labels"], len(x_test), f"'{files['t10k', 'labels']}'")
    num_classes = int(max(y_train.max(initial=0), y_test.max(initial=0))) + 1
    labels_file = Path(folder) / "labels.txt"
    if labels_file.exists():
        class_names = read_names_file(labels_file)
        source = f"'{labels_file}'"
    elif "fashion" in Path(folder).resolve().name.lower():
        class_names, source = list(FASHION_MNIST_CLASSES), f"IDX folder '{folder}'"
    else:
        class_names, source = [str(i) for i in range(10)], f"IDX folder '{folder}'"
    if num_classes > len(class_names) and not labels_file.exists():
        raise BadInput(f"IDX folder '{folder}' has labels up to {num_classes - 1}; add a "
                       "labels.txt with one class name per line")
    check_class_names(class_names, num_classes, source)
    return ArraySplits(x_train, y_train, x_test, y_test, class_names)


# Pillow modes of more than 8 bits per pixel, read as numbers and scaled to 0..255 here:
# Pillow's convert("RGB") clips them (a 16-bit PNG's mid-grey 32768 became white).
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _wide_to_8bit(image, name):
    values = np.asarray(image, np.float64)
    if image.mode == "F":
        if not np.isfinite(values).all():
            raise BadInput(f"{name} holds NaN or infinite pixel values")
        high = 1.0 if values.max(initial=0) <= 1.0 else 255.0
    else:
        high = 65535.0  # 16-bit samples (Pillow opens 16-bit PNGs as I;16, older ones as I)
    if values.min(initial=0) < 0 or values.max(initial=0) > high:
        raise BadInput(f"{name} holds pixel values outside 0-{high:g} "
                       f"({values.min():g} to {values.max():g})")
    return np.rint(values * (255.0 / high)).astype(np.uint8)


# The image formats any decoder here accepts (Pillow names): their headers give the size
# before any pixel is decoded. Others are never tried: Pillow's ICO plugin decodes an
# embedded PNG inside Image.open (a 657 KB file became 676 MB), and SPIDER, DDS or BLP
# content under a .png name failed with EOFError or NotImplementedError. (Pillow's JPEG
# opener also reads phones' MPO files, which then say format "MPO".)
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")


def _check_size(image, name):
    pixels_count = image.size[0] * image.size[1]
    if pixels_count > MAX_IMAGE_PIXELS:
        raise BadInput(f"{name} is {image.size[0]}x{image.size[1]}: "
                       f"{pixels_count:,} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                       "an image may have")


def _decode(image, height, width, name):
    """An opened image (size checked) -> (uint8 RGB [height,width,3], is_grayscale)."""
    from PIL import Image, ImageOps

    image.seek(0)  # first frame of an animated GIF
    _check_size(image, name)
    if image.format in ("JPEG", "MPO"):
        # Decode a big JPEG at 1/2, 1/4 or 1/8 scale (still at least the size asked for):
        # a 48-megapixel photo costs a few MB instead of 150.
        image.draft(None, (max(height, width),) * 2)
    image.load()
    # A big image is first shrunk by a whole factor in its own mode (Pillow's reduce, as
    # resize(reducing_gap=...) does), to at least twice the size asked for: the copies
    # below (orientation, RGB) then cost kilobytes, not another 150 MB each.
    factor = min(image.size[0] // (2 * width), image.size[1] // (2 * height))
    if factor >= 2:
        if image.mode.startswith("I;16"):  # reduce takes 32-bit integers, not 16-bit
            image = image.convert("I")
        image = image.reduce(factor)
    # Phones store photos as taken and record the turn (EXIF Orientation): turn them
    # upright, as browsers show them, so the model sees what the user sees.
    ImageOps.exif_transpose(image, in_place=True)
    grayscale = image.mode in ("1", "L", "LA") or image.mode in WIDE_MODES
    if image.mode in WIDE_MODES:
        image = Image.fromarray(_wide_to_8bit(image, name), "L")
    rgb = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8), grayscale


def open_image(source, height, width, name=None):
    """One image (a path or a binary file object) -> (uint8 RGB array [height,width,3],
    is_grayscale). The one decoder: training folders, ``predict`` and ``serve`` all read
    images here, so all three see the same pixels and the same bounds.

    Only IMAGE_FORMATS are opened, and an image's size is read from its header and
    checked (at most MAX_IMAGE_PIXELS) before anything is decoded; EXIF orientation is
    applied. Raises BadInput with the reason for anything else (not a regular file, not
    an image, corrupt, truncated, any decoder failure). 16-bit and float images are
    scaled to 8 bits.
    """
    from PIL import Image

    name = name or f"image '{source}'"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise BadInput(f"{name} is a folder, not an image file")
        if path.exists() and not path.is_file():  # a FIFO would block open() forever
            raise BadInput(f"{name} is not a regular file (a pipe, socket or device)")
        if not path.exists():
            raise BadInput(f"{name} does not exist")
    Image.init()  # registers every plugin (MPO, WEBP, TIFF are not preloaded)
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as image:
            return _decode(image, height, width, name)
    except BadInput:
        raise
    except Image.UnidentifiedImageError:
        raise BadInput(f"cannot read {name}: not a readable image file "
                       f"(accepted: {', '.join(IMAGE_FORMATS)})") from None
    except MemoryError:
        raise BadInput(f"cannot read {name}: not enough memory to decode it") from None
    except Exception as error:  # noqa: BLE001  a malformed file can trip any decoder
        reason = first_line(error, 100)
        shown = type(error).__name__ if reason == type(error).__name__ else f"{type(error).__name__}: {reason}"
        raise BadInput(f"cannot read {name}: not a readable image file ({shown})") from None


def read_image(source, height, width):
    """Like ``open_image``, but None for an image that cannot be used."""
    try:
        return open_image(source, height, width)
    except BadInput:
        return None


class FolderScan:
    """A bounded walk of an image folder dataset.

    Symbolic links are never followed out of the dataset root (a class folder linked to
    ``/`` would otherwise walk the host), links to folders inside it are not descended
    (no loops), and the walk stops with one line at MAX_FOLDER_FILES files, folders
    nested deeper than MAX_FOLDER_DEPTH below a class, or more than MAX_OTHER_FILES
    files that are not images (and ten times more of them than images): that is not
    an image dataset, e.g. ``--dataset /``.
    """

    def __init__(self, root):
        self.given = root
        self.root = Path(root).resolve()
        self.files = 0
        self.others = 0
        self.images = 0

    def _inside(self, path):
        target = Path(path).resolve()
        return target == self.root or self.root in target.parents

    def check_link(self, path):
        if not self._inside(path):
            raise BadInput(f"'{path}' links outside the dataset '{self.given}' (to "
                           f"'{Path(path).resolve()}'); copy what it points to into the dataset")

    def class_folders(self, folder):
        """Visible subfolders of ``folder`` (links allowed only inside the dataset)."""
        folders = []
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            raise BadInput(f"cannot read folder '{folder}': {error.strerror or error}") from None
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if entry.is_symlink():
                self.check_link(entry.path)
            folders.append(Path(entry.path))
        return folders

    def image_files(self, class_dir):
        """Sorted image files under one class folder."""
        paths = []
        for folder, dirs, files in os.walk(class_dir, followlinks=False):
            depth = len(Path(folder).relative_to(class_dir).parts)
            if depth >= MAX_FOLDER_DEPTH and dirs:
                raise BadInput(f"'{class_dir}' nests folders more than {MAX_FOLDER_DEPTH} levels "
                               "deep; an image dataset is class folders of images")
            for name in dirs:
                if os.path.islink(os.path.join(folder, name)):
                    self.check_link(os.path.join(folder, name))
            for name in files:
                path = Path(folder) / name
                if path.is_symlink():
                    self.check_link(path)
                self.files += 1
                if path.suffix.lower() in IMAGE_EXTENSIONS:
                    self.images += 1
                    paths.append(path)
                else:
                    self.others += 1
                if self.others > MAX_OTHER_FILES and self.others > 10 * self.images:
                    raise BadInput(f"'{self.given}' is not an image dataset: more than "
                                   f"{MAX_OTHER_FILES:,} files that are not images (e.g. '{path}')")
                if self.files > MAX_FOLDER_FILES:
                    raise BadInput(f"'{self.given}' holds more than {MAX_FOLDER_FILES:,} files; "
                                   "split it or use a TFDS dataset")
        return sorted(paths)


def _read_class_folders(scan, root, class_names, size):
    """Read every image under root/<class>/; returns (images, labels, grays, skipped
    paths, first skip reason)."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = Path(root) / name
        if not class_dir.is_dir():
            continue
        for file in scan.image_files(class_dir):
            paths.append(file)
            labels.append(label)
    check_data_bytes(len(paths) * size * size * 3,
                     f"{len(paths):,} images of {size}x{size} from '{scan.given}'")

    def decode(path):
        try:
            return open_image(path, size, size)
        except BadInput as error:
            return str(error)

    # PIL releases the GIL while decoding, so threads help on big folders.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(pool.map(decode, paths))
    images, kept_labels, grays, skipped, reasons = [], [], [], [], []
    for path, label, result in zip(paths, labels, results):
        if isinstance(result, str):
            skipped.append(str(path))
            reasons.append(result)
        else:
            images.append(result[0])
            grays.append(result[1])
            kept_labels.append(label)
    images = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return images, np.asarray(kept_labels, np.int64), grays, skipped, reasons


def load_image_folder(folder, image_size=None, seed=42, test_fraction=FOLDER_TEST_FRACTION):
    """Arrays from a folder with one subfolder per class (optionally under train/ and
    test/). Unreadable files are skipped and listed in ``skipped_files``. Without a
    test/ folder, a seeded stratified ``test_fraction`` of each class is held out for
    testing (0: every image in x_train, e.g. to evaluate on the whole folder).
    Grayscale sources (every image single-channel) come back with 1 channel."""
    size = image_size or DEFAULT_FOLDER_IMAGE_SIZE
    root = Path(folder)
    scan = FolderScan(root)
    split_layout = (root / "train").is_dir()
    for split in ("train", "test"):
        if (root / split).is_symlink():
            scan.check_link(root / split)
    train_root = root / "train" if split_layout else root
    class_names = [p.name for p in scan.class_folders(train_root)]
    if len(class_names) < 2:
        raise BadInput(
            f"image folder '{folder}' has {len(class_names)} class subfolder(s); "
            "it needs one subfolder per class, at least two"
        )
    check_class_names(class_names, len(class_names), f"image folder '{folder}'")
    test_layout = split_layout and (root / "test").is_dir()
    if test_layout:
        test_classes = [p.name for p in scan.class_folders(root / "test")]
        extra = [n for n in test_classes if n not in class_names]
        if extra:
            raise BadInput(f"'{root / 'test'}' has class folders that train/ lacks: "
                           f"{', '.join(extra[:5])}")
    x, y, grays, skipped, reasons = _read_class_folders(scan, train_root, class_names, size)
    if test_layout:
        x_test, y_test, test_grays, test_skipped, test_reasons = _read_class_folders(
            scan, root / "test", class_names, size
        )
        grays, skipped, reasons = grays + test_grays, skipped + test_skipped, reasons + test_reasons
    elif test_fraction > 0:
        x, y, x_test, y_test = _stratified_split(x, y, test_fraction, seed)
    else:
        x_test, y_test = x[:0], y[:0]
    if len(x) == 0:
        found = f" ({len(skipped)} unreadable; {reasons[0]})" if skipped else ""
        raise BadInput(f"image folder '{folder}' holds no readable images{found}")
    empty = [n for i, n in enumerate(class_names) if not np.any(y == i)]
    if empty:
        raise BadInput(f"class folder(s) without readable images: {', '.join(empty)}")
    if len(x_test) == 0 and (test_layout or test_fraction > 0):
        where = (f"'{root / 'test'}' holds no readable images" if test_layout else
                 "no class has the 2 images it needs to hold one out for testing")
        raise BadInput(f"image folder '{folder}' gives no test images: {where}")
    if grays and all(grays):
        x, x_test = to_grayscale(x), to_grayscale(x_test)
    return ArraySplits(x, y, x_test, y_test, class_names, skipped)


def _stratified_split(x, y, fraction, seed):
    """Hold out ``fraction`` of each class (at least one image where a class has two)."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(y):
        indices = rng.permutation(np.flatnonzero(y == label))
        count = int(round(len(indices) * fraction)) if len(indices) > 1 else 0
        held.extend(indices[: max(count, 1 if len(indices) > 1 else 0)])
    mask = np.zeros(len(y), bool)
    mask[np.asarray(held, dtype=np.int64)] = True
    return x[~mask], y[~mask], x[mask], y[mask]


def to_grayscale(x):
    """RGB uint8 -> 1-channel uint8 with ITU-R 601 luma weights (as PIL's 'L')."""
    if x.shape[-1] == 1:
        return x
    luma = x.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.rint(luma)[..., None].astype(np.uint8)


def to_rgb(x):
    return x if x.shape[-1] == 3 else np.repeat(x, 3, axis=-1)


def resize_images(x, size):
    """Resize a uint8 batch [N,H,W,C] to size x size, keeping 0..255 uint8."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    if not tensorflow_available():
        return _resize_with_pil(x, size)
    tf = import_tensorflow()

    chunks = [
        tf.image.resize(x[i: i + 4096], (size, size), antialias=True).numpy()
        for i in range(0, len(x), 4096)
    ]
    return np.clip(np.rint(np.concatenate(chunks)), 0, 255).astype(np.uint8)


def _resize_with_pil(x, size):
    """``resize_images`` on a host without TensorFlow: PIL's bilinear filter, which widens with
    the scale factor when shrinking (antialiased, as tf.image.resize(antialias=True));
    pixels differ from TensorFlow's by at most one grey level (0.1 on average)."""
    from PIL import Image

    mode = "L" if x.shape[-1] == 1 else "RGB"
    resized = [np.asarray(Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode)
                          .resize((size, size), Image.Resampling.BILINEAR)) for image in x]
    return np.stack(resized).reshape(len(x), size, size, x.shape[-1]).astype(np.uint8)


def load_arrays(source, image_size=None, seed=42):
    """ArraySplits for a local source (sample, .npz, IDX folder or image folder)."""
    kind = source_kind(source)
    if kind == "sample":
        arrays = load_npz(SAMPLE_PATH)
    elif kind == "npz":
        arrays = load_npz(source)
    elif kind == "idx":
        arrays = load_idx_folder(source)
    elif kind == "folder":
        arrays = load_image_folder(source, image_size, seed)
    else:
        raise ValueError(f"'{source}' is a TFDS name, not a local source")
    return check_splits(arrays, source)


def check_splits(arrays, source):
    """BadInput unless both splits hold images of one shape: a missing test split would
    otherwise fail only after the whole training."""
    if len(arrays.x_train) == 0:
        raise BadInput(f"dataset '{source}' has no training images")
    if len(arrays.x_test) == 0:
        raise BadInput(f"dataset '{source}' has no test images; the run is measured on them")
    train_shape, test_shape = arrays.x_train.shape[1:], arrays.x_test.shape[1:]
    if train_shape != test_shape:
        shown = lambda shape: "x".join(map(str, shape))  # noqa: E731
        raise BadInput(f"dataset '{source}': x_test images are {shown(test_shape)} but x_train "
                       f"images are {shown(train_shape)}")
    return arrays


# ---------------------------------------------------------------------------------------
# TFDS
# ---------------------------------------------------------------------------------------


def _network_reachable(host="storage.googleapis.com", port=443, timeout=3.0):
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_hint(name):
    return (
        f"work offline with --data-dir (a TFDS data dir where '{name}' is prepared), "
        "--manual-dir (its downloaded archives), or a local path (image folder, IDX "
        "folder, .npz)"
    )


def tfds_builder(name, data_dir=None):
    """The TFDS builder for an image classification dataset, or BadInput."""
    import_tensorflow()
    import tensorflow_datasets as tfds

    # TFDS asks Google Cloud Storage for the dataset's files; offline, its C++ client
    # logs the failed attempts on stderr.
    with native_output_captured(f"looking up TFDS dataset '{name}'"):
        try:
            builder, close = tfds.builder(name, data_dir=data_dir), []
        except tfds.core.registered.DatasetNotFoundError:
            builder, close = None, difflib.get_close_matches(name, tfds.list_builders(), n=3)
    if builder is None:
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BadInput(
            f"unknown dataset '{name}': not a path and not a TFDS dataset{hint}"
        ) from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise BadInput(f"TFDS dataset '{name}' is not an image classification dataset")
    return builder


def prepare_tfds(builder, name, manual_dir):
    """Download and prepare a TFDS dataset, failing fast with a hint when offline."""
    import_tensorflow()
    import tensorflow_datasets as tfds

    if builder.is_prepared():
        return
    if manual_dir is None and not _network_reachable():
        raise BadInput(f"cannot download TFDS dataset '{name}' (no network); {_offline_hint(name)}")
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as error:  # TFDS raises many types (network, checksum, manual)
        raise BadInput(f"cannot prepare TFDS dataset '{name}': {first_line(error)}; "
                       f"{_offline_hint(name)}") from None
