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


def test_readme_model_table_is_what_models_markdown_prints(run_cli):
    done = run_cli("models", "--markdown")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip().splitlines()
    assert len(printed) == 2 + len(MODELS)
    readme = (ROOT / "README.md").read_text().splitlines()
    start = readme.index(printed[0])
    assert readme[start:start + len(printed)] == printed
