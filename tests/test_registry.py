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
    ("lenet5_bn", {"widths": [8]}, "model lenet5_bn cannot be built with widths=[8]: list index out of range"),
    ("mobilenet_mini", {"stem_strides": 1.5}, "model mobilenet_mini: stem_strides must be a whole number, got 1.5"),
    ("mobilenet_mini", {"blocks": [32, 2]}, "model mobilenet_mini: blocks must be a list like [[64, 2], "),
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


def test_a_wrong_kind_of_builder_argument_is_refused_by_fit_before_a_run_folder(run_cli, tmp_path):
    done = run_cli("fit", "--model", "lenet5_bn", "--model-arg", "pool_first=maybe",
                   "--run-dir", tmp_path / "run")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "Error: model lenet5_bn: pool_first must be true or false, got 'maybe'"]
    assert not (tmp_path / "run").exists()


def test_readme_model_table_is_what_models_markdown_prints(run_cli):
    done = run_cli("models", "--markdown")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    assert len(printed) == 2 + len(MODELS)
    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index(printed[0])
    assert readme[start:start + len(printed)] == printed
