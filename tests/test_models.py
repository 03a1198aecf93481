"""Model registry: every variant builds for any input, counts its parameters, round-trips."""

import keras
import numpy as np
import pytest

from lenet_keras import models
from lenet_keras.models import C3_CONNECTIONS, PartialConv2D, build_model
from lenet_keras.registry import list_models

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
    [("lenet5", 61_706), ("lenet5_classic", 60_850), ("lenet1", 4_326), ("mlp", 338_610),
     ("alexnet_mini", 253_258), ("mobilenet_mini", 87_818), ("mobilenet_mini_050", 24_970)],
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
    assert list_models("mobilenet*") == ["mobilenet_mini", "mobilenet_mini_050"]
    assert "mlp" in list_models()


def test_mobilenet_width_multiplier_scales_every_layer_to_multiples_of_8():
    full = build_model("mobilenet_mini", (28, 28, 1), 10)
    half = build_model("mobilenet_mini_050", (28, 28, 1), 10)
    convs = [layer.name for layer in full.layers if layer.name.endswith("_conv")]
    assert convs == ["stem_conv"] + [f"block{i}_pw_conv" for i in range(1, 6)]
    for name in convs:
        wide, narrow = full.get_layer(name).filters, half.get_layer(name).filters
        assert narrow == wide // 2 and narrow % 8 == 0
    assert models.mobilenet_mini((28, 28, 1), 10, width=0.25).get_layer("stem_conv").filters == 8


def test_mobilenet_is_depthwise_separable_with_relu6_from_a_full_resolution_stem_to_7x7():
    import keras

    model = build_model("mobilenet_mini", (28, 28, 1), 10)
    depthwise = [l for l in model.layers if isinstance(l, keras.layers.DepthwiseConv2D)]
    assert len(depthwise) == 5 and all(l.kernel_size == (3, 3) for l in depthwise)
    relus = [l for l in model.layers if isinstance(l, keras.layers.ReLU)]
    assert len(relus) == 11 and all(float(l.max_value) == 6.0 for l in relus)
    assert model.get_layer("stem_conv").output.shape[1:3] == (28, 28)
    assert model.get_layer("pool").input.shape[1:3] == (7, 7)


def test_alexnet_mini_has_five_convs_three_pools_and_two_dropout_dense_layers():
    import keras

    model = build_model("alexnet_mini", (28, 28, 1), 10)
    kinds = [type(l).__name__ for l in model.layers
             if isinstance(l, (keras.layers.Conv2D, keras.layers.MaxPooling2D, keras.layers.Dense,
                               keras.layers.Dropout))]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Conv2D",
                     "Conv2D", "MaxPooling2D", "Dense", "Dropout", "Dense", "Dropout", "Dense"]


def test_smoothed_sparse_crossentropy_equals_keras_one_hot_label_smoothing():
    import keras

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]], "float32")
    labels = np.array([0, 2, 1])
    for smoothing in (0.0, 0.1, 0.3):
        ours = models.SmoothedSparseCrossentropy(smoothing)(labels, probs)
        reference = keras.losses.CategoricalCrossentropy(label_smoothing=smoothing)(
            keras.ops.one_hot(labels, 3), probs)
        assert float(ours) == pytest.approx(float(reference), rel=1e-5)
