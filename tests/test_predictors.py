"""predict: image files through any exported form, one line per image, one-line errors."""

import shutil

import numpy as np
import pytest
from PIL import Image

from lenet_keras.errors import BadInput
from lenet_keras.predictors import load_predictor, read_image, top_k
from lenet_keras.runtimes import dequantize, quantize



@pytest.fixture(scope="module")
def export_dir(tiny_run, tmp_path_factory):
    from lenet_keras.export import export_run

    out = tmp_path_factory.mktemp("predict") / "export"
    export_run(tiny_run, out, formats=("float32", "int8"), calibration_samples=100,
               latency_number=5, progress=False, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def images(tiny_run, tmp_path_factory):
    """Three test images of the run as PNG files (one enlarged RGB JPEG) and their labels."""
    from lenet_keras.sources import load_arrays

    arrays = load_arrays(None)
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(3):
        path = folder / f"test{i}.png"
        Image.fromarray(arrays.x_test[i, :, :, 0]).save(path)
        paths.append(path)
    rgb = folder / "big.jpg"
    Image.fromarray(arrays.x_test[3, :, :, 0]).convert("RGB").resize((84, 84)).save(rgb, quality=95)
    paths.append(rgb)
    return paths, arrays.x_test[:4].astype(np.float32)


def keras_top1(tiny_run, pixels):
    from lenet_keras.runs import load_model, read_labels

    probabilities = load_model(tiny_run / "model.keras").predict(pixels, verbose=0)
    labels = read_labels(tiny_run)
    return [labels[i] for i in probabilities.argmax(1)]


def parse(stdout):
    """'path: label p, label p' lines -> {path: [(label, p), ...]}."""
    rows = {}
    for line in stdout.strip().splitlines():
        path, ranked = line.rsplit(": ", 1)
        rows[path] = [(item.rsplit(" ", 1)[0], float(item.rsplit(" ", 1)[1]))
                      for item in ranked.split(", ")]
    return rows


@pytest.mark.parametrize("form", ["model.keras", "saved_model", "model_float32.tflite",
                                  "model_int8.tflite"])
def test_predict_prints_top_k_per_image_for_every_form(tiny_run, export_dir, images, form, invoke):
    paths, _ = images
    model = tiny_run / form if form == "model.keras" else export_dir / form
    result = invoke("predict", *paths[:3], "--model", model, "--top-k", 3)
    assert result.exit_code == 0, result.output + result.stderr
    rows = parse(result.stdout)
    assert list(rows) == [str(p) for p in paths[:3]]
    labels = (tiny_run / "labels.txt").read_text().splitlines()
    for ranked in rows.values():
        assert len(ranked) == 3
        assert all(label in labels for label, _ in ranked)
        probabilities = [p for _, p in ranked]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0.0 <= sum(probabilities) <= 1.02


def test_predictions_match_the_keras_model_on_the_same_pixels(tiny_run, export_dir, images, invoke):
    paths, pixels = images
    expected = keras_top1(tiny_run, pixels[:3])
    for model in [tiny_run / "model.keras", export_dir / "model_float32.tflite"]:
        result = invoke("predict", *paths[:3], "--model", model)
        assert [ranked[0][0] for ranked in parse(result.stdout).values()] == expected


def test_int8_file_quantizes_with_its_own_parameters(export_dir, images):
    from lenet_keras.runtimes import TFLiteModel

    _, pixels = images
    float_model = TFLiteModel(export_dir / "model_float32.tflite")
    int8_model = TFLiteModel(export_dir / "model_int8.tflite")
    prepared = int8_model.prepare(pixels)
    assert prepared.dtype == np.int8
    scale, zero_point = int8_model.input_info["scale"], int8_model.input_info["zero_point"]
    np.testing.assert_allclose(dequantize(prepared, scale, zero_point), pixels, atol=scale)
    np.testing.assert_allclose(int8_model.predict(pixels), float_model.predict(pixels), atol=0.1)


def test_images_are_converted_and_resized_to_the_model_input(images):
    paths, pixels = images
    gray = read_image(paths[0], (28, 28, 1))
    assert gray.shape == (28, 28, 1) and gray.dtype == np.float32
    np.testing.assert_array_equal(gray, pixels[0])  # PNG round trip is lossless
    big = read_image(paths[3], (28, 28, 1))  # 84x84 RGB JPEG -> 28x28 gray
    assert big.shape == (28, 28, 1)
    assert np.mean(np.abs(big - pixels[3])) < 12  # resampling and JPEG, same picture
    assert read_image(paths[0], (32, 32, 3)).shape == (32, 32, 3)


def test_unreadable_images_get_one_line_each_and_exit_2(tiny_run, images, tmp_path, invoke):
    paths, _ = images
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    missing = tmp_path / "missing.jpg"
    result = invoke("predict", paths[0], corrupt, missing, paths[1],
                    "--model", tiny_run / "model.keras")
    assert result.exit_code == 2
    assert list(parse(result.stdout)) == [str(paths[0]), str(paths[1])]  # the good ones still run
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("Error: ") for line in errors)
    assert "corrupt.png" in errors[0] and "missing.jpg" in errors[1]


def test_predict_defaults_to_the_latest_run(tiny_run, images, in_tmp, invoke):
    paths, pixels = images
    shutil.copytree(tiny_run, in_tmp / "runs" / "tiny")
    result = invoke("predict", paths[0])
    assert result.exit_code == 0, result.stderr
    assert parse(result.stdout)[str(paths[0])][0][0] == keras_top1(tiny_run, pixels[:1])[0]


@pytest.mark.parametrize("case", ["corrupt.keras", "model.onnx", "missing.tflite", "empty_dir",
                                  "garbage.tflite"])
def test_bad_models_are_one_line_exit_2(images, in_tmp, case, invoke):
    paths, _ = images
    model = in_tmp / case
    if case == "empty_dir":
        model.mkdir()
    elif case != "missing.tflite":
        model.write_bytes(b"PK\x03\x04 definitely not a model")
    result = invoke("predict", paths[0], "--model", model)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("Error: ")
    assert result.stdout == ""


def test_predict_without_runs_is_one_line_exit_2(images, in_tmp, invoke):
    result = invoke("predict", images[0][0])
    assert result.exit_code == 2 and "no runs found" in result.stderr


def test_quantize_round_trip_and_top_k_helpers():
    x = np.array([0.0, 1.0, 127.5, 255.0, 300.0], np.float32)
    q = quantize(x, np.int8, 1.0, -128)
    assert q.tolist() == [-128, -127, 0, 127, 127]  # clipped at the int8 range
    np.testing.assert_allclose(dequantize(q, 1.0, -128), [0, 1, 128, 255, 255])
    ranked = top_k(np.array([0.1, 0.7, 0.2]), ["a", "b", "c"], k=2)
    assert ranked == [("b", pytest.approx(0.7)), ("c", pytest.approx(0.2))]
    assert top_k(np.array([0.9, 0.1]), None)[0][0] == "class_0"


def test_load_predictor_rejects_a_folder_that_is_not_a_saved_model(tmp_path):
    with pytest.raises(BadInput, match="not a SavedModel"):
        load_predictor(tmp_path)
