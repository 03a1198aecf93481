"""explain: heat maps on every registry model and backend, honest by two checks, and the
`explain` command's PNGs and one-line errors.

The honesty checks here run on the `tiny_run` fixture (lenet5, 2 epochs on the embedded
sample) and 64 of its test images; benchmarks/explain_checks.py runs them on 200 real
Fashion-MNIST test images of a fully trained run (docs/EXPLAIN.md).
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT

requires_jax = pytest.mark.skipif(
    __import__("importlib").util.find_spec("jax") is None, reason="pip install jax")
CHECK_IMAGES = 64


def _registry():
    from lenet_keras.registry import list_models

    return list_models()


@pytest.fixture(scope="module")
def sample_test():
    """The embedded sample's test images [N,28,28,1] float32 and labels."""
    from lenet_keras.sources import SAMPLE_PATH

    sample = np.load(SAMPLE_PATH)
    x = sample["x_test"].reshape(-1, 28, 28, 1).astype(np.float32)
    return x, sample["y_test"].astype(np.int64), [str(n) for n in sample["class_names"]]


@pytest.fixture(scope="module")
def trained(tiny_run):
    from lenet_keras.runs import load_model

    return load_model(tiny_run / "model.keras")


@pytest.fixture
def image_files(sample_test, tmp_path):
    """Two test images as PNG files, the second an enlarged RGB JPEG (predict's decoder
    resizes and converts it)."""
    x, _, _ = sample_test
    first, second = tmp_path / "boot.png", tmp_path / "shirt.jpg"
    Image.fromarray(x[0, ..., 0].astype(np.uint8)).save(first)
    Image.fromarray(x[1, ..., 0].astype(np.uint8)).convert("RGB").resize((84, 84)).save(second)
    return [first, second]


# ---------------------------------------------------------------------------------------
# Every registry model, freshly built
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", _registry())
def test_every_registry_model_gives_heat_maps_and_feature_maps(name, sample_test):
    import lenet_keras as lk
    from lenet_keras.errors import BadInput
    from lenet_keras.explaining import stages

    model = lk.build_model(name, (28, 28, 1), 10)
    images = sample_test[0][:3]
    methods = ["saliency"] if name == "mlp" else ["gradcam", "saliency"]
    for method in methods:
        maps = lk.explain(model, images, method=method)
        assert maps.shape == (3, 28, 28) and maps.dtype == np.float32
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
        assert maps.reshape(3, -1).max(axis=1).min() > 0  # not blank
    if name == "mlp":  # no convolution: Grad-CAM and feature maps refuse in one line
        with pytest.raises(BadInput, match="no convolution layer"):
            lk.explain(model, images, method="gradcam")
        with pytest.raises(BadInput, match="no convolution or pooling layer"):
            lk.feature_maps(model, images[0])
        return
    maps = lk.feature_maps(model, images[0])
    assert list(maps) and len(maps) == len(stages(model))
    for stage_maps in maps.values():
        assert stage_maps.ndim == 3 and np.isfinite(stage_maps).all()


def test_custom_and_depthwise_layers_are_stages():
    """lenet5_classic's PartialConv2D and Subsampling, mobilenet_mini's depthwise
    convolutions count as stages; Grad-CAM takes the last one larger than 1x1."""
    import lenet_keras as lk
    from lenet_keras.explaining import gradcam_stage, stage_name, stages

    classic = lk.build_model("lenet5_classic", (28, 28, 1), 10)
    assert [stage_name(s) for s in stages(classic)] == ["c1", "s2", "c3", "s4", "c5"]
    assert gradcam_stage(classic)[1].name == "c3"  # c5's maps are 1x1
    mobile = lk.build_model("mobilenet_mini", (28, 28, 1), 10)
    names = [stage_name(s) for s in stages(mobile)]
    assert "block1_dw → block1_dw_relu6" in names
    assert gradcam_stage(mobile)[1].name == "block5_pw_relu6"


# ---------------------------------------------------------------------------------------
# Honesty checks on the tiny run
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def check_set(trained, sample_test):
    from lenet_keras.explaining import _keras_forward

    images = sample_test[0][:CHECK_IMAGES]
    forward = _keras_forward(trained)
    return images, forward, forward(images).argmax(axis=1)


@pytest.mark.parametrize("method", ["gradcam", "saliency", "occlusion"])
def test_deletion_check(method, trained, check_set):
    """Blanking the 10% of pixels a heat map ranks highest lowers the class probability
    more than blanking 10% at random. Measured on this run (64 images): random lowers it
    by 0.036; Grad-CAM by 0.095, saliency 0.177, occlusion 0.497. The bar: twice the
    random drop and at least 0.05, on at least half of the images, so a map unrelated to
    the model (which matches random on average) cannot pass by luck."""
    from lenet_keras.explaining import deletion_drops, heatmaps

    images, forward, classes = check_set
    maps = heatmaps(trained, forward, images, method, classes)
    drops = deletion_drops(forward, images, maps, classes)
    top, random = drops["heatmap"].mean(), drops["random"].mean()
    print(f"{method}: top-10% {top:.3f}, random {random:.3f}, ink {drops['random_ink'].mean():.3f}")
    assert top > 2 * random and top > 0.05
    assert np.mean(drops["heatmap"] > drops["random"]) >= 0.5


@pytest.mark.parametrize("method", ["gradcam", "saliency", "occlusion"])
def test_randomisation_check(method, trained, check_set):
    """The trained model's heat maps and a freshly initialised copy's have a mean
    Spearman rank correlation below 0.5 (Adebayo et al. 2018). The check can fail:
    the same model against itself correlates 1.0 (asserted)."""
    from lenet_keras.explaining import heatmaps, randomisation_correlations, rank_correlation

    images, forward, classes = check_set
    rho, trained_maps, random_maps = randomisation_correlations(trained, images, method, classes)
    print(f"{method}: mean rank correlation {rho.mean():.3f}")
    assert rho.mean() < 0.5
    again = heatmaps(trained, forward, images[:4], method, classes[:4])
    assert all(rank_correlation(a, b) > 0.999 for a, b in zip(again, trained_maps[:4]))


def test_rank_correlation_ties_and_numpy_fallback(monkeypatch):
    from lenet_keras.explaining import rank_correlation

    a = np.array([0, 0, 1, 2, 3.0])
    assert rank_correlation(a, a * 10) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros(5)) == 0.0  # a constant map ranks nothing
    with_scipy = rank_correlation(a, np.array([3, 1, 2, 0, 4.0]))
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    assert rank_correlation(a, np.array([3, 1, 2, 0, 4.0])) == pytest.approx(with_scipy)


# ---------------------------------------------------------------------------------------
# The API
# ---------------------------------------------------------------------------------------


def test_api_classes_paths_and_bad_shapes(tiny_run, trained, sample_test, image_files):
    import lenet_keras as lk
    from lenet_keras.errors import BadInput

    images = sample_test[0][:2]
    predicted = lk.explain(trained, images, method="gradcam")
    same = lk.explain(tiny_run / "model.keras", images, method="gradcam",
                      class_index=trained.predict(images, verbose=0).argmax(1))
    np.testing.assert_allclose(predicted, same, atol=1e-5)
    other = lk.explain(trained, images, method="gradcam", class_index=3)
    assert other.shape == (2, 28, 28) and not np.allclose(other, predicted)
    from_files = lk.explain(trained, [str(p) for p in image_files], method="saliency")
    assert from_files.shape == (2, 28, 28)
    with pytest.raises(BadInput, match=r"do not fit the model.*28, 28, 1"):
        lk.explain(trained, np.zeros((2, 32, 32, 3)), method="gradcam")
    with pytest.raises(BadInput, match="out of range"):
        lk.explain(trained, images, class_index=10)
    with pytest.raises(BadInput, match="unknown method 'lime'"):
        lk.explain(trained, images, method="lime")


@pytest.mark.slow
def test_occlusion_runs_on_a_tflite_file_and_agrees_with_keras(micro_export, sample_test):
    """Occlusion needs forward passes only: on the float32 .tflite it gives the Keras
    model's map; Grad-CAM on it refuses in one line."""
    import lenet_keras as lk
    from lenet_keras.errors import BadInput

    run_dir, export_dir, _, _ = micro_export
    images = sample_test[0][:2]
    on_tflite = lk.explain(export_dir / "model_float32.tflite", images, method="occlusion")
    on_keras = lk.explain(run_dir / "model.keras", images, method="occlusion")
    assert np.abs(on_tflite - on_keras).max() < 0.02
    with pytest.raises(BadInput, match="needs gradients"):
        lk.explain(export_dir / "model_float32.tflite", images, method="gradcam")


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------

ON_JAX = textwrap.dedent("""
    import json, sys
    import numpy as np
    import lenet_keras as lk
    import keras
    images = np.load(sys.argv[2])
    maps = lk.explain(sys.argv[1], images, method=sys.argv[3])
    np.save(sys.argv[4], maps)
    print("@@" + json.dumps({"backend": keras.backend.backend()}))
""")


@pytest.mark.slow
@requires_jax
@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_gradients_on_jax_agree_with_tensorflow(method, tiny_run, trained, sample_test, tmp_path):
    """The gradient shim on JAX (a subprocess: Keras picks its backend at import) gives
    the TensorFlow maps of the same model file."""
    import lenet_keras as lk

    images = sample_test[0][:4]
    np.save(tmp_path / "images.npy", images)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", ON_JAX, str(tiny_run / "model.keras"),
                           str(tmp_path / "images.npy"), method, str(tmp_path / "maps.npy")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("@@"))
    assert json.loads(line[2:])["backend"] == "jax"
    on_jax = np.load(tmp_path / "maps.npy")
    on_tensorflow = lk.explain(trained, images, method=method)
    assert on_jax.shape == (4, 28, 28)
    assert np.abs(on_jax - on_tensorflow).max() < 1e-3


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


def test_explain_command_writes_three_kinds_of_png(tiny_run, image_files, tmp_path, run_cli):
    out = tmp_path / "out"
    result = run_cli("explain", *image_files, "--run-dir", tiny_run, "--out", out)
    assert result.returncode == 0, result.stderr
    names = ["filters.png"] + [f"{stem}_{kind}.png" for stem in ("boot", "shirt")
                               for kind in ("feature_maps", "gradcam", "saliency", "occlusion")]
    assert result.stdout.splitlines() == [f"wrote {len(names)} files to {out}"] + [
        f"  {name}" for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        with Image.open(out / name) as image:
            assert image.size[0] >= 600 and np.asarray(image.convert("L")).std() > 10


def test_explain_figures_say_what_they_show(trained, sample_test):
    from lenet_keras.explaining import (
        feature_maps, first_filters, plot_feature_maps, plot_filters, plot_heatmap,
    )

    figure = plot_filters(*first_filters(trained))
    assert figure._suptitle.get_text().startswith("First convolution 'c1_conv': 6 filters of 5×5×1")
    maps = feature_maps(trained, sample_test[0][0])
    figure = plot_feature_maps(sample_test[0][0], maps)
    titles = [sub._suptitle.get_text() for sub in figure.subfigs[1:]]
    assert titles[0] == "c1_conv → c1_relu: 28×28×6 (all 6 maps; bright = strong)"
    assert titles[2].startswith("c3_conv → c3_relu: 10×10×16 (8 strongest of 16 maps")
    figure = plot_heatmap(sample_test[0][0], np.zeros((28, 28)), title="x: Grad-CAM (p = 0.91)")
    assert figure._suptitle.get_text() == "x: Grad-CAM (p = 0.91)"


def _layerless_model(path):
    from lenet_keras.quiet import import_keras

    keras = import_keras()
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, inputs).save(path)
    return path


@pytest.mark.parametrize("case", ["class", "image", "layerless", "gradcam_on_mlp", "tflite"])
def test_explain_bad_input_is_one_line_and_writes_nothing(case, tiny_run, image_files,
                                                          tmp_path, run_cli):
    import lenet_keras as lk

    args, expected = {
        "class": (["--run-dir", tiny_run, "--class", "spaceship"],
                  "Error: unknown class 'spaceship'; the model's classes: t-shirt_top, trouser"),
        "image": (["--run-dir", tiny_run], "Error: cannot read image"),
        "layerless": (["--model", _layerless_model(tmp_path / "empty.keras")],
                      "Error: model 'functional"),
        "gradcam_on_mlp": (["--method", "gradcam", "--model", tmp_path / "mlp.keras"],
                           "Error: model 'mlp' has no convolution layer"),
        "tflite": (["--model", tmp_path / "model.tflite"], "Error: explain needs a Keras model"),
    }[case]
    images = list(image_files)
    if case == "image":
        images.append(tmp_path / "notes.png")
        images[-1].write_text("not an image")
    if case == "gradcam_on_mlp":
        lk.build_model("mlp", (28, 28, 1), 10).save(tmp_path / "mlp.keras")
    out = tmp_path / "out"
    result = run_cli("explain", *images, *args, "--out", out)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(expected) and len(result.stderr.splitlines()) == 1
    assert not out.exists()


def test_evaluate_explain_writes_mistakes_first(tiny_run, tmp_path, invoke):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = invoke("evaluate", "--run-dir", run, "--explain", 8)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].endswith(f"{run / 'explained.png'}")
    from lenet_keras.evaluate import evaluate_run

    evaluation = evaluate_run(run, explain=8)
    shown = evaluation.explained
    assert shown["method"] == "gradcam" and shown["maps"].shape == (8, 28, 28)
    wrong = (evaluation.labels != evaluation.predictions)[shown["indices"]]
    assert wrong.any() and list(wrong) == sorted(wrong, reverse=True)  # mistakes first
