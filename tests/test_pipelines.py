"""Data sources -> batches (pipelines.load_dataset, what fit trains on): sample, .npz, IDX,
image folders, TFDS (mocked); sources.py's readers where they are tested directly."""

import gzip

import numpy as np
import pytest
from PIL import Image

from lenet_keras import sources
from lenet_keras.pipelines import load_dataset
from lenet_keras.errors import BadInput


def first_batch(dataset):
    images, labels = next(iter(dataset))
    return images.numpy(), labels.numpy()


def all_labels(dataset):
    return np.concatenate([labels.numpy() for _, labels in dataset])


# --- embedded sample ---------------------------------------------------------------------


def test_embedded_sample_is_real_fashion_mnist_with_splits():
    bundle = load_dataset(None, batch_size=64, val_split=0.1)
    assert bundle.class_names[0] == "t-shirt_top" and len(bundle.class_names) == 10
    assert bundle.image_shape == (28, 28, 1)
    assert (bundle.num_train, bundle.num_val, bundle.num_test) == (5400, 600, 1000)
    images, labels = first_batch(bundle.train)
    assert images.shape == (64, 28, 28, 1) and images.dtype == np.float32
    assert images.max() > 200 and images.min() >= 0  # raw pixels, not scaled
    assert set(all_labels(bundle.test)) == set(range(10))


def test_validation_split_is_seeded():
    val = lambda seed: all_labels(load_dataset(None, seed=seed).val)  # noqa: E731
    assert np.array_equal(val(1), val(1))
    assert not np.array_equal(val(1), val(2))


def test_training_order_is_deterministic_under_a_seed():
    batch = lambda seed: first_batch(load_dataset(None, seed=seed).train)[1]  # noqa: E731
    assert np.array_equal(batch(3), batch(3))
    assert not np.array_equal(batch(3), batch(4))


def test_rgb_and_resize_options():
    bundle = load_dataset(None, color="rgb", image_size=32, batch_size=8)
    images, _ = first_batch(bundle.test)
    assert bundle.image_shape == (32, 32, 3) and images.shape == (8, 32, 32, 3)
    assert np.array_equal(images[..., 0], images[..., 2])  # gray repeated


def test_augment_changes_training_images_only():
    plain = first_batch(load_dataset(None, seed=5).train)[0]
    augmented = first_batch(load_dataset(None, seed=5, augment="shift").train)[0]
    assert plain.shape == augmented.shape and not np.allclose(plain, augmented)


def test_flip_augmentation_mirrors_gray_images_and_none_leaves_them():
    plain = first_batch(load_dataset(None, seed=5).train)[0]
    flipped = first_batch(load_dataset(None, seed=5, augment="flip").train)[0]
    same = [np.array_equal(a, b) for a, b in zip(plain, flipped)]
    mirrored = [np.array_equal(a[:, ::-1], b) for a, b in zip(plain, flipped)]
    assert all(s or m for s, m in zip(same, mirrored))  # each image kept or mirrored
    assert 0 < sum(mirrored) < len(plain)
    unchanged = first_batch(load_dataset(None, seed=5, augment="none").train)[0]
    np.testing.assert_array_equal(plain, unchanged)


# --- positive class (one-vs-rest) --------------------------------------------------------


def test_positive_class_makes_a_balanced_binary_problem():
    bundle = load_dataset(None, positive_class="sneaker")
    assert bundle.class_names == ["not_sneaker", "sneaker"]
    labels = all_labels(bundle.test)
    assert set(labels) == {0, 1} and labels.mean() == pytest.approx(0.1)
    weights = bundle.class_weight
    assert weights[1] > 4 * weights[0]  # the rare positive class weighs more


def test_unknown_positive_class_suggests_close_names():
    with pytest.raises(BadInput, match="did you mean sneaker"):
        load_dataset(None, positive_class="sneakers")


# --- .npz ----------------------------------------------------------------------------------


def write_npz(path, floats=False, **extra):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50, 20, 20)).astype(np.uint8)
    arrays = dict(x_train=x[:40], y_train=np.arange(40) % 3, x_test=x[40:], y_test=np.arange(10) % 3)
    if floats:
        arrays["x_train"] = arrays["x_train"] / 255.0
        arrays["x_test"] = arrays["x_test"] / 255.0
    np.savez(path, **arrays, **extra)
    return arrays


def test_npz_source(tmp_path):
    arrays = write_npz(tmp_path / "d.npz", class_names=np.array(["a", "b", "c"]))
    bundle = load_dataset(str(tmp_path / "d.npz"), batch_size=10, val_split=0)
    assert bundle.class_names == ["a", "b", "c"] and bundle.image_shape == (20, 20, 1)
    images, labels = first_batch(bundle.test)
    np.testing.assert_array_equal(images[..., 0], arrays["x_test"])
    np.testing.assert_array_equal(labels, arrays["y_test"])


def test_npz_with_unit_floats_becomes_pixels(tmp_path):
    arrays = write_npz(tmp_path / "f.npz", floats=True)
    split = sources.load_npz(tmp_path / "f.npz")
    assert split.x_test.dtype == np.uint8 and split.class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(split.x_test[..., 0], np.rint(arrays["x_test"] * 255))


def test_npz_missing_arrays_is_bad_input(tmp_path):
    np.savez(tmp_path / "bad.npz", x_train=np.zeros((2, 4, 4)))
    with pytest.raises(BadInput, match="lacks arrays"):
        load_dataset(str(tmp_path / "bad.npz"))


# --- IDX -----------------------------------------------------------------------------------


def idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder, compress=True, n_train=60, n_test=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (folder / name).write_bytes(idx_bytes(array))
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_folder_source(tmp_path, compress):
    arrays = write_idx_folder(tmp_path / "digits", compress)
    assert sources.source_kind(str(tmp_path / "digits")) == "idx"
    split = sources.load_idx_folder(tmp_path / "digits")
    assert split.class_names == [str(i) for i in range(10)]
    np.testing.assert_array_equal(split.x_test[..., 0], arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(split.y_train, arrays["train-labels-idx1-ubyte"])


def test_idx_folder_named_fashion_gets_fashion_class_names(tmp_path):
    write_idx_folder(tmp_path / "my-fashion-mnist")
    assert sources.load_idx_folder(tmp_path / "my-fashion-mnist").class_names[-1] == "ankle_boot"


def test_truncated_idx_file_is_bad_input(tmp_path):
    write_idx_folder(tmp_path / "broken", compress=False)
    path = tmp_path / "broken" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BadInput, match="truncated"):
        load_dataset(str(tmp_path / "broken"))


def test_real_fashion_mnist_idx(fashion_mnist_dir):
    split = sources.load_idx_folder(fashion_mnist_dir)
    assert split.x_train.shape == (60000, 28, 28, 1) and split.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(split.y_test).tolist() == [1000] * 10
    assert split.class_names[0] == "t-shirt_top"


# --- image folders -------------------------------------------------------------------------


def write_image(path, size, mode="RGB", color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    fill = color if mode == "RGB" else color[0]
    Image.new(mode, size, fill).save(path)


def make_photo_folder(root):
    """hot_dog / not_hot_dog with mixed formats, sizes, a grayscale image and a corrupt file."""
    for i in range(6):
        write_image(root / "hot_dog" / f"h{i}.jpg", (40 + i, 30), color=(220, 40, 40))
        write_image(root / "not_hot_dog" / f"n{i}.png", (25, 50 + i), color=(20, 40, 220))
    write_image(root / "hot_dog" / "h.bmp", (33, 33), color=(230, 50, 50))
    write_image(root / "not_hot_dog" / "n.gif", (32, 32), mode="L", color=(90,))
    (root / "not_hot_dog" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "not_hot_dog" / "notes.txt").write_text("not an image, ignored")


def test_image_folder_with_mixed_formats_sizes_and_a_corrupt_file(tmp_path):
    make_photo_folder(tmp_path / "photos")
    split = sources.load_image_folder(tmp_path / "photos", image_size=32, seed=0)
    assert split.class_names == ["hot_dog", "not_hot_dog"]
    assert [p.endswith("corrupt.png") for p in split.skipped_files] == [True]
    assert split.x_train.shape[1:] == (32, 32, 3)
    assert len(split.x_train) + len(split.x_test) == 14
    assert set(split.y_test) == {0, 1}  # stratified hold-out
    # Red hot dogs, blue others: the pixels are the images, resized.
    red = split.x_train[split.y_train == 0][..., 0].mean()
    assert red > 200


def test_image_folder_with_train_and_test_subfolders(tmp_path):
    for split_name, count in [("train", 4), ("test", 2)]:
        for label in ["cat", "dog"]:
            for i in range(count):
                write_image(tmp_path / "pets" / split_name / label / f"{i}.png", (20, 20))
    bundle = load_dataset(str(tmp_path / "pets"), image_size=28, val_split=0)
    assert (bundle.num_train, bundle.num_test) == (8, 4)
    assert bundle.image_shape == (28, 28, 3)


def test_all_grayscale_folder_gives_one_channel(tmp_path):
    for label in ["a", "b"]:
        for i in range(3):
            write_image(tmp_path / "gray" / label / f"{i}.png", (30, 30), mode="L", color=(i * 50,))
    assert sources.load_image_folder(tmp_path / "gray").x_train.shape[-1] == 1


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"only": ["a.png"]}, "at least two"),
        ({}, "at least two"),
        ({"a": ["x.png"], "b": ["y.png"]}, "no readable images"),
    ],
)
def test_bad_image_folders(tmp_path, layout, message):
    root = tmp_path / "bad"
    root.mkdir()
    for label, files in layout.items():
        (root / label).mkdir()
        for name in files:
            (root / label / name).write_bytes(b"garbage")
    with pytest.raises(BadInput, match=message):
        load_dataset(str(root))


def test_missing_path_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_dataset(str(tmp_path / "nowhere"))


# --- TFDS (mocked: no network here) --------------------------------------------------------


@pytest.fixture
def mock_tfds(monkeypatch):
    """tfds.testing.mock_data replaces downloads; tell the offline check it may proceed."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(sources, "_network_reachable", lambda *a, **k: True)
    return tfds.testing.mock_data


def test_tfds_source_with_mock_data(mock_tfds):
    with mock_tfds(num_examples=40):
        bundle = load_dataset("mnist", batch_size=8, val_split=0.25)
        images, labels = first_batch(bundle.train)
        assert bundle.class_names == [str(i) for i in range(10)]
        assert bundle.image_shape == (28, 28, 1) and images.shape == (8, 28, 28, 1)
        # mock_data gives every split (and slice) num_examples images
        assert bundle.num_train == 40 and bundle.val is not None
        assert images.dtype == np.float32 and labels.max() < 10


def test_tfds_variable_size_photos_resized_and_binarized_with_mock_data(mock_tfds):
    with mock_tfds(num_examples=24):
        bundle = load_dataset("food101", batch_size=4, positive_class="hot_dog", color="grayscale")
        images, labels = first_batch(bundle.test)
        assert bundle.class_names == ["not_hot_dog", "hot_dog"]
        assert images.shape == (4, 32, 32, 1) and set(labels) <= {0, 1}
        assert bundle.class_weight is not None


def test_unknown_tfds_name_suggests_close_matches():
    with pytest.raises(BadInput, match="did you mean.*mnist"):
        load_dataset("mnsit")


def test_tfds_offline_fails_fast_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_network_reachable", lambda *a, **k: False)
    with pytest.raises(BadInput, match="no network.*--manual-dir"):
        load_dataset("mnist", data_dir=str(tmp_path))
