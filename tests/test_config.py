"""TrainConfig: options checked once, the registry recipe, config.json round trips."""

import json

import pytest

from lenet_keras.config import TrainConfig, parse_model_arg
from lenet_keras.errors import BadInput


def test_config_round_trips_through_json():
    config = TrainConfig(model="mlp", dataset="cifar10", color="grayscale", positive_class="cat")
    assert TrainConfig.from_json(config.to_json()) == config


def test_unset_options_take_the_models_registry_recipe_and_given_ones_win(monkeypatch):
    from lenet_keras import registry

    spec = registry.get_spec("mobilenet_mini")
    monkeypatch.setitem(registry.MODELS, "mobilenet_mini", registry.ModelSpec(
        spec.name, spec.description, train={"label_smoothing": 0.1, "augment": "flip"}))
    config = TrainConfig.for_model("mobilenet_mini", epochs=3, label_smoothing=None)
    assert (config.label_smoothing, config.augment, config.epochs) == (0.1, "flip", 3)
    config = TrainConfig.for_model("mobilenet_mini", label_smoothing=0.0, augment="none")
    assert (config.label_smoothing, config.augment) == (0.0, "none")
    plain = TrainConfig.for_model("lenet5", learning_rate=None)
    assert plain.learning_rate == TrainConfig().learning_rate and plain.label_smoothing == 0.0


def test_mobilenet_mini_trains_with_flips_by_default_and_the_others_with_none():
    # The recipe chosen on validation (README "Training recipe"); a user's flag still wins.
    assert TrainConfig.for_model("mobilenet_mini").augment == "flip"
    assert TrainConfig.for_model("mobilenet_mini", augment="none").augment == "none"
    assert TrainConfig.for_model("mobilenet_mini_050").augment == "none"
    assert TrainConfig.for_model("lenet5").augment == "none"
    assert TrainConfig.for_model("mobilenet_mini").recipe_changes() == "augment=flip"
    assert TrainConfig.for_model("lenet5").recipe_changes() == ""
    assert TrainConfig.for_model("mobilenet_mini", augment="none").recipe_changes() == ""


def test_a_config_json_from_before_augment_was_one_value_still_loads():
    old = json.loads(TrainConfig().to_json())
    for stored, expected in ((False, "none"), (True, "shift")):
        old["augment"] = stored
        assert TrainConfig.from_json(json.dumps(old)).augment == expected
    old.pop("model_args")
    assert TrainConfig.from_json(json.dumps(old)).model_args == {}


@pytest.mark.parametrize("augment", [True, False, "zoom", None])
def test_augment_is_one_named_value(augment):
    with pytest.raises(BadInput, match="augment must be one of none, shift, flip, shift\\+flip"):
        TrainConfig(augment=augment).check()


@pytest.mark.parametrize("text, parsed", [
    ("width=0.75", ("width", 0.75)), ("widths=[16, 32]", ("widths", [16, 32])),
    ("dropout=0", ("dropout", 0)), (" name = x", ("name", " x")),
])
def test_model_args_parse_as_json_values(text, parsed):
    assert parse_model_arg(text) == parsed


@pytest.mark.parametrize("text", ["width", "=3", ""])
def test_a_model_arg_without_name_and_value_is_refused(text):
    with pytest.raises(BadInput, match="--model-arg takes NAME=VALUE"):
        parse_model_arg(text)


def test_model_args_must_be_json_values_with_identifier_names():
    with pytest.raises(BadInput, match="Python identifiers"):
        TrainConfig(model_args={"not a name": 1}).check()
    with pytest.raises(BadInput, match="must be a number, string or list"):
        TrainConfig(model_args={"width": {"nested": 1}}).check()


def test_the_fast_recipe_picks_its_model_and_settings_and_given_options_win():
    from lenet_keras.registry import RECIPES

    fast = TrainConfig.for_model(None, recipe="fast").check()
    assert fast.model == RECIPES["fast"]["model"] and fast.recipe == "fast"
    for name, value in RECIPES["fast"].items():
        assert getattr(fast, name) == value, name
    assert fast.recipe_changes().startswith("fast (model=")
    # Recorded in config.json, so a resumed or exported run knows its recipe.
    assert json.loads(fast.to_json())["recipe"] == "fast"
    assert TrainConfig.from_json(fast.to_json()) == fast
    mine = TrainConfig.for_model("lenet5_bn", recipe="fast", epochs=2, target_accuracy=None)
    assert (mine.model, mine.epochs) == ("lenet5_bn", 2)
    assert mine.target_accuracy == RECIPES["fast"].get("target_accuracy")
    assert mine.model_args == RECIPES["fast"]["model_args"]
    # The recipe's builder arguments belong to its model: another model does not get them.
    other = TrainConfig.for_model("lenet5", recipe="fast").check()
    assert (other.model, other.model_args, other.epochs) == ("lenet5", {}, RECIPES["fast"]["epochs"])
    # A --model-arg changes that argument of the recipe's model and keeps the others.
    wider = TrainConfig.for_model(None, recipe="fast", model_args={"widths": [12, 24]})
    assert wider.model_args == {**RECIPES["fast"]["model_args"], "widths": [12, 24]}
    # Nobody changes the registry's recipe through a config's model_args.
    fast.model_args["widths"] = [1, 1]
    assert RECIPES["fast"]["model_args"]["widths"] == [8, 16]
    assert TrainConfig.for_model(None).model == "lenet5" and TrainConfig().recipe is None


@pytest.mark.parametrize("values, message", [
    ({"target_accuracy": 1.5}, r"target_accuracy must be a number in \(0, 1\], got 1.5"),
    ({"target_accuracy": 0}, "target_accuracy must be"),
    ({"target_accuracy": True}, "target_accuracy must be"),
    ({"target_accuracy": "0.9"}, "target_accuracy must be"),
    ({"recipe": "slow"}, "unknown recipe 'slow'; choose one of: fast"),
    ({"recipe": 3}, "recipe must be text"),
])
def test_bad_target_or_recipe_is_refused_before_training(values, message):
    with pytest.raises(BadInput, match=message):
        TrainConfig(**values).check()
