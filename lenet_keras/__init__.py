"""lenet_keras: LeNet-5 and its family of small CNNs in Keras 3.

Build, train, export and run a model in a few lines::

    import lenet_keras as lk

    metrics = lk.train(lk.TrainConfig(model="lenet5", epochs=5), "runs/lenet5")
    report = lk.export_run("runs/lenet5", "exports/lenet5")
    lk.predict(["shirt.png"], "exports/lenet5/model_int8.tflite", top=3)

Stages, one module each: ``registry`` (names) and ``models`` (Keras builders), ``data``
(input pipelines), ``training`` (+ ``callbacks``, ``runs``: the run directory), ``convert``
and ``export`` (SavedModel / TFLite), ``predictors``, ``evaluate``, ``plots``,
``explaining`` (filters, feature maps, Grad-CAM / saliency / occlusion heat maps), ``cli``.
The names below are imported on first use, so ``import lenet_keras`` stays cheap (no
TensorFlow until a function needs it). The modules are named apart from the functions
(``training``, ``predictors``), so ``lenet_keras.train`` is always the function.
"""

import importlib

__version__ = "0.2.0"

# public name -> (module, attribute)
_API = {
    "build_model": ("lenet_keras.models", "build_model"),
    "list_models": ("lenet_keras.registry", "list_models"),
    "load_dataset": ("lenet_keras.pipelines", "load_dataset"),
    "TrainConfig": ("lenet_keras.config", "TrainConfig"),
    "train": ("lenet_keras.training", "train"),
    "export_run": ("lenet_keras.export", "export_run"),
    "load_predictor": ("lenet_keras.predictors", "load_predictor"),
    # A model.keras in safe mode, the package's own layers (lenet5_classic) registered.
    "load_model": ("lenet_keras.runs", "load_model"),
    "predict": ("lenet_keras.predictors", "predict_files"),
    "explain": ("lenet_keras.explaining", "explain"),
    "feature_maps": ("lenet_keras.explaining", "feature_maps"),
    "BadInput": ("lenet_keras.errors", "BadInput"),
}
__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'lenet_keras' has no attribute '{name}'")
    module, attribute = _API[name]
    if module in ("lenet_keras.models", "lenet_keras.explaining"):  # Keras loads quietly first
        from lenet_keras.quiet import import_keras

        import_keras()
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
