"""The registry as data: every spec builds, builder arguments reach the builder, and the
README's model table is what `lenet-keras models --markdown` prints."""

import pytest

from conftest import ROOT
from lenet_keras.errors import BadInput
from lenet_keras.models import build_model
from lenet_keras.registry import MODELS, builder_name, list_models


@pytest.mark.parametrize("name", list_models())
def test_every_spec_names_a_builder_that_builds_it(name):
    import lenet_keras.models as models

    spec = MODELS[name]
    assert callable(getattr(models, builder_name(spec)))
    model = build_model(name, (28, 28, 1), 10)
    assert model.output_shape == (None, 10)
    assert spec.description and "\n" not in spec.description


def test_a_width_variant_is_a_spec_with_builder_arguments():
    spec = MODELS["mobilenet_mini_050"]
    assert (builder_name(spec), spec.kwargs) == ("mobilenet_mini", {"width": 0.5})
    half = build_model("mobilenet_mini_050", (28, 28, 1), 10).count_params()
    assert half == build_model("mobilenet_mini", (28, 28, 1), 10, width=0.5).count_params()
    # A config's builder argument goes on top of the spec's.
    assert build_model("mobilenet_mini_050", (28, 28, 1), 10, width=0.75).count_params() == (
        build_model("mobilenet_mini", (28, 28, 1), 10, width=0.75).count_params())


def test_an_unknown_builder_argument_names_the_ones_it_takes():
    with pytest.raises(BadInput, match=r"model mobilenet_mini takes no argument 'depth'; it "
                                       r"takes: width, blocks, dropout, stem_strides"):
        build_model("mobilenet_mini", (28, 28, 1), 10, depth=3)
    with pytest.raises(BadInput, match="model lenet5 takes no argument 'width'; it takes: no arguments"):
        build_model("lenet5", (28, 28, 1), 10, width=2)


@pytest.mark.parametrize("name, kwargs, message", [
    # A string is truthy: pool_first="false" would have built the pool-first net.
    ("lenet5_bn", {"pool_first": "false"}, "model lenet5_bn: pool_first must be true or false, got 'false'"),
    ("lenet5_bn", {"dropout": "abc"}, "model lenet5_bn: dropout must be a number, got 'abc'"),
    ("lenet5_bn", {"widths": [8.5, 16]}, "model lenet5_bn: widths must be a list like [32, 64], got [8.5, 16]"),
    ("lenet5_bn", {"widths": [8]}, "model lenet5_bn cannot be built with widths=[8]: not enough values to unpack"),
    ("mobilenet_mini", {"stem_strides": 1.5}, "model mobilenet_mini: stem_strides must be a whole number, got 1.5"),
    ("mobilenet_mini", {"blocks": [32, 2]}, "model mobilenet_mini: blocks must be a list like [[64, 2], "),
    # Round 5: the kind before the range (a switch given 0 was told "positive") ...
    ("lenet5_bn", {"pool_first": 0}, "model lenet5_bn: pool_first must be true or false, got 0"),
    ("lenet5_bn", {"widths": [float("nan"), 16]}, "model lenet5_bn: widths must be a list like [32, 64]"),
    ("lenet5_bn", {"widths": []}, "model lenet5_bn: widths must be a list of 1 to 16 values, got []"),
    ("mlp", {"hidden": [5] * 17}, "model mlp: hidden must be a list of 1 to 16 values"),
    # ... sizes no machine here builds refused before a weight exists (TensorFlow's OOM was
    # 50 lines and exit 1; 10**23 and 1e308 were internal TypeError / OverflowError) ...
    ("lenet5_bn", {"widths": [100000, 100000]}, "model lenet5_bn: widths must be positive and at most 1,024, got [100000, 100000]"),
    ("lenet5_bn", {"widths": [10**23, 16]}, "model lenet5_bn: widths must be positive and at most 1,024"),
    ("lenet5_bn", {"dense_units": [10**9, 84]}, "model lenet5_bn: dense_units must be positive and at most 1,024"),
    ("mlp", {"hidden": [10**9]}, "model mlp: hidden must be positive and at most 1,024, got [1000000000]"),
    ("alexnet_mini", {"widths": [100000] * 5}, "model alexnet_mini: widths must be positive and at most 1,024"),
    ("mobilenet_mini", {"width": 1e308}, "model mobilenet_mini: width must be positive and at most 4, got 1e+308"),
    ("mobilenet_mini", {"width": 1000}, "model mobilenet_mini: width must be positive and at most 4, got 1000"),
    ("mobilenet_mini", {"blocks": [[10**6, 1]]}, "model mobilenet_mini: blocks must be positive and at most 1,024"),
    ("mobilenet_mini", {"stem_strides": 0}, "model mobilenet_mini: stem_strides must be positive and at most 1,024, got 0"),
    # ... and a list longer than the builder uses is refused, not cut short unsaid.
    ("lenet5_bn", {"widths": [8, 16, 32]}, "model lenet5_bn cannot be built with widths=[8, 16, 32]: too many values to unpack"),
    ("lenet5_bn", {"dense_units": [128, 84, 10]}, "model lenet5_bn cannot be built with dense_units=[128, 84, 10]: too many"),
])
def test_a_builder_argument_of_the_wrong_kind_is_one_line(name, kwargs, message):
    with pytest.raises(BadInput) as refused:
        build_model(name, (28, 28, 1), 10, **kwargs)
    assert str(refused.value).startswith(message)


def test_builder_arguments_of_the_right_kind_build():
    assert build_model("lenet5_bn", (28, 28, 1), 10, pool_first=True, dropout=0,
                       widths=[8, 16]).count_params() == build_model(
        "lenet5_bn", (28, 28, 1), 10, widths=[8, 16]).count_params()  # same weights, new order
    assert build_model("mobilenet_mini", (28, 28, 1), 10, width=1,
                       blocks=[[32, 2], [64, 1]]).output_shape == (None, 10)
    assert build_model("mlp", (28, 28, 1), 10, hidden=[50]).count_params() == 784 * 50 + 50 + 510
    # The limits themselves build (one at a time).
    assert build_model("mlp", (28, 28, 1), 10, hidden=[1024] * 16).output_shape == (None, 10)
    assert build_model("mobilenet_mini", (28, 28, 1), 10, width=4).output_shape == (None, 10)


@pytest.mark.parametrize("widths", [[16], [16, 32, 48], [16, 32, 48, 48, 32, 32, 32]])
def test_alexnet_mini_builds_a_convolution_per_width(widths):
    """A 7-entry widths list built 5 convolutions (zip with the 5 kernel sizes)."""
    model = build_model("alexnet_mini", (28, 28, 1), 10, widths=widths)
    convs = [layer for layer in model.layers if layer.name.startswith("conv")]
    assert [layer.filters for layer in convs] == widths
    assert [layer.kernel_size for layer in convs] == [(5, 5)] + [(3, 3)] * (len(widths) - 1)


def test_a_wrong_kind_of_builder_argument_is_refused_by_fit_before_a_run_folder(run_cli, tmp_path):
    done = run_cli("fit", "--model", "lenet5_bn", "--model-arg", "pool_first=maybe",
                   "--run-dir", tmp_path / "run")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: model lenet5_bn: pool_first must be true or false, got 'maybe'"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model_arg, message", [
    ("widths=[100000,100000]", "Error: model lenet5_bn: widths must be positive and at most 1,024, got [100000, 100000]"),
    ("pool_first=0", "Error: model lenet5_bn: pool_first must be true or false, got 0"),
    ("input_shape=[28,28,1]", "Error: model argument input_shape comes from the dataset; use --image-size, "
                              "--grayscale/--rgb or --positive-class instead"),
    ("num_classes=3", "Error: model argument num_classes comes from the dataset; "),
])
def test_fit_refuses_a_builder_argument_out_of_range_in_one_line(run_cli, tmp_path, model_arg, message):
    """Round 5: each was an internal error (exit 1; TensorFlow's OOM took 50 lines) or named
    the wrong rule; now one line, exit 2, before TensorFlow allocates, no run folder."""
    done = run_cli("fit", "--model", "lenet5_bn", "--model-arg", model_arg,
                   "--run-dir", tmp_path / "run")
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith(message), lines[0]
    assert not (tmp_path / "run").exists()


def test_fit_help_describes_each_recipe_as_the_registry_holds_it(run_cli):
    """--recipe's help was written by hand and still described lenet5 with a stop at 0.905
    after the recipe became lenet5_bn for 3 epochs."""
    from lenet_keras.registry import RECIPES

    done = run_cli("fit", "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for name, settings in RECIPES.items():
        for key, value in settings.items():
            assert f"{key}={value}" in text, (name, key)


def test_readme_model_table_is_what_models_markdown_prints(run_cli):
    done = run_cli("models", "--markdown")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    assert len(printed) == 2 + len(MODELS)
    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index(printed[0])
    assert readme[start:start + len(printed)] == printed
