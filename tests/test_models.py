"""Model registry: every variant builds for any input, counts its parameters, round-trips."""

import keras
import numpy as np
import pytest

from lenet_keras import models
from lenet_keras.models import C3_CONNECTIONS, PartialConv2D, build_model, list_models

SHAPES = [(28, 28, 1), (32, 32, 3), (64, 48, 3)]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("num_classes", [2, 10])
def test_every_model_gives_class_probabilities(name, shape, num_classes):
    model = build_model(name, shape, num_classes)
    pixels = np.random.default_rng(0).integers(0, 256, (3, *shape)).astype("float32")
    probs = model.predict(pixels, verbose=0)
    assert probs.shape == (3, num_classes)
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "name, params",
    [("lenet5", 61_706), ("lenet5_classic", 60_850), ("lenet1", 4_326), ("mlp", 338_610)],
)
def test_parameter_counts_at_32x32x1(name, params):
    assert models.count_params(name, (32, 32, 1), 10) == params


def test_lenet5_pads_28x28_digits_to_32x32_inside_the_model():
    model = build_model("lenet5", (28, 28, 1), 10)
    assert model.get_layer("pad").output.shape[1:3] == (32, 32)
    assert model.get_layer("flatten").output.shape[-1] == 400
    assert model.count_params() == 61_706


def test_classic_c3_has_the_papers_1516_parameters_and_table_i_connections():
    model = build_model("lenet5_classic", (32, 32, 1), 10)
    assert model.get_layer("c3").count_params() == 1_516
    assert sum(len(c) for c in C3_CONNECTIONS) == 60
    # Feed one input map at a time: only the output maps Table I connects to it respond.
    layer = PartialConv2D(C3_CONNECTIONS, 5)
    layer.build((None, 14, 14, 6))
    for source in range(6):
        x = np.zeros((1, 14, 14, 6), "float32")
        x[..., source] = 1.0
        y = keras.ops.convert_to_numpy(layer(x))  # bias is zero at init
        responding = set(np.flatnonzero(np.abs(y).sum(axis=(0, 1, 2)) > 0))
        expected = {j for j, inputs in enumerate(C3_CONNECTIONS) if source in inputs}
        assert responding == expected


def test_scaled_tanh_maps_plus_minus_one_to_itself():
    out = keras.ops.convert_to_numpy(models.scaled_tanh(np.array([1.0, -1.0, 0.0])))
    np.testing.assert_allclose(out, [1.0, -1.0, 0.0], atol=2e-4)


def test_mini_is_small_enough_for_a_microcontroller():
    assert models.count_params("lenet5_mini", (28, 28, 1), 10) < 5_000


def test_rescaling_is_inside_the_model_so_raw_pixels_go_in():
    model = build_model("lenet5", (28, 28, 1), 10)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


@pytest.mark.parametrize("name", list_models())
def test_models_round_trip_through_keras_files_in_safe_mode(name, tmp_path):
    model = build_model(name, (28, 28, 1), 10)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    pixels = np.random.default_rng(1).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(pixels, verbose=0), model.predict(pixels, verbose=0), atol=1e-6
    )


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="lenet5_classic"):
        build_model("lenet7")


def test_image_too_small_is_refused():
    with pytest.raises(ValueError, match="too small"):
        build_model("lenet5", (16, 16, 1), 10)


def test_list_models_filters_by_pattern():
    assert set(list_models("lenet5*")) == {"lenet5", "lenet5_classic", "lenet5_mini", "lenet5_bn"}
    assert "mlp" in list_models()
