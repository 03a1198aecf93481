"""TFLite metadata in every exported .tflite, and model_mediapipe.tflite in MediaPipe Tasks'
real ImageClassifier (metadata.py)."""

import numpy as np
import pytest
from PIL import Image

from lenet_keras.formats import FORMATS
from lenet_keras.metadata import (
    BUFFER_ALIGNMENT, MIN_PARSER_VERSION, MediaPipeClassifier, add_metadata, embedded_labels,
    read_metadata)

ALL_TFLITE = [fmt.file for fmt in FORMATS if fmt.file.endswith(".tflite")]


@pytest.fixture(scope="module")
def test_images(micro_export):
    """1,000 test images of the run (raw 0-255 pixels) and the run's Keras predictions."""
    from lenet_keras.export import dataset_arrays
    from lenet_keras.predictors import load_predictor
    from lenet_keras.runs import load_config
    from lenet_keras.pipelines import evaluation_batches

    run_dir, _, _, _ = micro_export
    x, _ = dataset_arrays(evaluation_batches(load_config(run_dir)).test, 1000)
    return x, load_predictor(run_dir / "model.keras").predict(x)


def _buffer_offsets(content):
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            yield buffer.DataAsNumpy().ctypes.data - np.frombuffer(content, np.uint8).ctypes.data


@pytest.mark.parametrize("name", ALL_TFLITE)
def test_every_tflite_carries_labels_and_normalization(micro_export, name):
    _, out, _, _ = micro_export
    content = (out / name).read_bytes()
    meta = read_metadata(content)
    labels = (out / "labels.txt").read_text().splitlines()
    assert meta["labels"] == labels and len(labels) == 10
    assert meta["label_file"] == "labels.txt"
    assert meta["min_parser_version"] == MIN_PARSER_VERSION
    channels = 3 if name == "model_mediapipe.tflite" else 1
    assert meta["color_space"] == ("RGB" if channels == 3 else "GRAYSCALE")
    assert meta["mean"] == [0.0] * channels and meta["std"] == [1.0] * channels  # raw pixels
    assert meta["name"] == "lenet5"
    # Repacking kept every buffer 16-byte aligned, as the schema asks.
    assert all(offset % BUFFER_ALIGNMENT == 0 for offset in _buffer_offsets(content))


def test_metadata_leaves_the_model_unchanged_and_replaces_old_metadata(micro_export, test_images):
    from lenet_keras.runtimes import TFLiteModel

    _, out, _, _ = micro_export
    x, _ = test_images
    content = (out / "model_int8.tflite").read_bytes()
    relabelled = add_metadata(content, [f"class {i}" for i in range(10)], name="again")
    assert read_metadata(relabelled)["labels"] == [f"class {i}" for i in range(10)]
    assert read_metadata(relabelled)["name"] == "again"
    np.testing.assert_array_equal(TFLiteModel(relabelled).predict(x[:100]),
                                  TFLiteModel(content).predict(x[:100]))


def test_predict_finds_the_labels_inside_a_lone_tflite(micro_export, tmp_path):
    from lenet_keras.predictors import load_predictor

    _, out, _, _ = micro_export
    lone = tmp_path / "model_int8.tflite"  # no labels.txt beside it
    lone.write_bytes((out / "model_int8.tflite").read_bytes())
    assert load_predictor(lone).labels == (out / "labels.txt").read_text().splitlines()
    assert embedded_labels(b"not a model") is None


def test_mediapipe_image_classifier_agrees_with_predict_on_1000_test_images(micro_export,
                                                                           test_images):
    """The real MediaPipe Tasks runtime, fed RGB uint8 as an app would, gives the class
    the Keras model gives (float32 inside, luma computed as predict computes it)."""
    _, out, report, _ = micro_export
    x, keras_probabilities = test_images
    with MediaPipeClassifier(out / "model_mediapipe.tflite") as classifier:
        probabilities = classifier.predict(x)
    agreement = np.mean(probabilities.argmax(1) == keras_probabilities.argmax(1))
    assert agreement >= 0.99
    np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-4)
    entry = report["formats"]["mediapipe"]
    assert entry["runtime"] == "mediapipe" and entry["agreement"] >= 0.99
    assert entry["input"]["dtype"] == "uint8" and entry["input"]["shape"] == [1, 28, 28, 3]


def test_mediapipe_and_cli_predict_print_the_same_labels(micro_export, test_images, tmp_path,
                                                        run_cli):
    """PNG files through `predict` (a subprocess) and through MediaPipe's ImageClassifier:
    the same label for each; MediaPipe also takes a photo of another size and shape."""
    run_dir, out, _, _ = micro_export
    x, _ = test_images
    paths = []
    for i in range(20):
        paths.append(tmp_path / f"image{i}.png")
        Image.fromarray(x[i, :, :, 0].astype(np.uint8), "L").save(paths[-1])
    result = run_cli("predict", *paths, "--model", run_dir / "model.keras")
    assert result.returncode == 0, result.stderr
    printed = [line.split(": ", 1)[1].rsplit(" ", 1)[0] for line in result.stdout.splitlines()]
    with MediaPipeClassifier(out / "model_mediapipe.tflite") as classifier:
        classified = [classifier.classify(classifier.image(np.asarray(Image.open(p).convert("RGB"))))
                      for p in paths]
        photo = np.random.default_rng(0).integers(0, 256, (120, 90, 3)).astype(np.uint8)
        scores = classifier.classify(classifier.image(photo))
    assert printed == [categories[0][1] for categories in classified]
    labels = (out / "labels.txt").read_text().splitlines()
    assert sorted(label for _, label, _ in scores) == sorted(labels)
    assert sum(score for _, _, score in scores) == pytest.approx(1.0, abs=1e-3)
