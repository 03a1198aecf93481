"""The public Python API: `import lenet_keras` is cheap and exposes the whole job."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import lenet_keras as lk

API = ["build_model", "list_models", "load_dataset", "TrainConfig", "train", "export_run",
       "predict", "load_predictor", "load_model", "BadInput", "explain", "feature_maps"]


def test_import_is_cheap_and_lists_the_api():
    code = ("import sys, lenet_keras as lk; print(sorted(lk.__all__)); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, heavy = result.stdout.splitlines()
    assert names == str(sorted(API))
    assert heavy == "False False"
    assert result.stderr == ""


def test_every_public_name_has_a_docstring():
    for name in API:
        assert getattr(lk, name).__doc__, name


@pytest.mark.slow
def test_train_export_predict_in_a_few_lines(tmp_path):
    """The README's Python API example, end to end on the embedded sample."""
    metrics = lk.train(lk.TrainConfig(model="lenet5_mini", epochs=1), tmp_path / "run",
                       log=lambda *_: None)
    assert 0.1 < metrics["test_accuracy"] <= 1 and metrics["run_dir"] == str(tmp_path / "run")
    report = lk.export_run(tmp_path / "run", tmp_path / "export", formats=("int8",),
                           latency_number=5, progress=False, log=lambda *_: None)
    assert report["formats"]["int8"]["test_accuracy"] > 0.1

    bundle = lk.load_dataset(None, batch_size=16)
    images, labels = next(iter(bundle.test))
    paths = []
    for i, image in enumerate(images.numpy()[:4].astype(np.uint8)):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image[..., 0]).save(paths[-1])
    results = lk.predict(paths, tmp_path / "export" / "model_int8.tflite", top=2)
    assert [path for path, _ in results] == paths
    for _, ranked in results:
        assert len(ranked) == 2 and ranked[0][0] in bundle.class_names
        assert ranked[0][1] >= ranked[1][1]


def test_library_errors_are_bad_input_and_value_errors():
    try:
        lk.build_model("no_such_model")
    except lk.BadInput as error:
        assert isinstance(error, ValueError) and "choose one of" in str(error)
    else:
        raise AssertionError("an unknown model must raise BadInput")
    assert lk.list_models("lenet5*") == ["lenet5", "lenet5_bn", "lenet5_classic", "lenet5_mini"]
