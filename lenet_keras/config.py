"""The run's configuration: ``TrainConfig``, every option of ``fit`` checked once, here,
and saved as the run's config.json (everything needed to rebuild the run).

    >>> config = TrainConfig.for_model("mobilenet_mini", epochs=30).check()
    >>> config.recipe_changes()
    'augment=flip'

No TensorFlow, no Keras, no run folder: the CLI builds and checks a config in
milliseconds, before anything heavy is imported, and every later stage (data, model,
training, export) reads the same checked values.
"""

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone

from lenet_keras.backends import check_choices, default_backend
from lenet_keras.errors import BadInput
from lenet_keras.registry import get_recipe, get_spec

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant")
COLORS = (None, "grayscale", "rgb")
# Training augmentation, one value everywhere (both input pipelines, every backend):
# "shift" random shifts and zooms (plus left-right flips for RGB photos), "flip"
# left-right flips only, "shift+flip" both (pipelines.augmenter).
AUGMENTATIONS = ("none", "shift", "flip", "shift+flip")
# Larger images would not be "small CNN" work and can exhaust memory before training.
MAX_IMAGE_SIZE = 1024
# Every builder's first two parameters (models.py), set from the data: as a model argument
# they clashed with build_model's own (an internal TypeError, exit 1).
DATA_ARGUMENTS = ("input_shape", "num_classes")
# numpy and TensorFlow seeds are unsigned 32-bit.
MAX_SEED = 2**32 - 1
# Beyond these a value is a typo, not a plan (and 2**40 overflows TensorFlow's int32 shapes).
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 65_536


@dataclass
class TrainConfig:
    """One training run. Built by the CLI, saved as config.json next to the model."""

    model: str = "lenet5"
    # None: the embedded Fashion-MNIST sample, so a fresh clone trains offline.
    dataset: str = None
    # 15 epochs reach 0.90+ on the full Fashion-MNIST with the cosine schedule.
    epochs: int = 15
    batch_size: int = 128
    # Peak rate of the cosine schedule. Measured on Fashion-MNIST, lenet5, 15 epochs:
    # 1e-3 ends at 0.899-0.903 test accuracy, 2e-3 at 0.903-0.908 (3 seeds).
    learning_rate: float = 2e-3
    optimizer: str = "adam"  # "adam" or "sgd" (with momentum)
    momentum: float = 0.9
    # Cosine decay to zero over the run: converges in fewer epochs than a constant rate.
    schedule: str = "cosine"  # "cosine" or "constant"
    seed: int = 42
    val_split: float = 0.1
    image_size: int = None  # None: the dataset's own size
    color: str = None  # None (as the dataset), "grayscale" or "rgb"
    augment: str = "none"  # one of AUGMENTATIONS
    # Cross-entropy against (1 - e) one-hot + e uniform targets; 0 is plain cross-entropy.
    label_smoothing: float = 0.0
    # Decoupled weight decay (AdamW, or SGD's) per step, times the learning rate; 0: off.
    weight_decay: float = 0.0
    # Linear warm-up from 0 to the peak rate over this many epochs, then the schedule.
    warmup_epochs: int = 0
    positive_class: str = None
    early_stopping: int = 0  # patience in epochs; 0 turns it off
    # Stop at the end of the first epoch whose validation accuracy (training accuracy
    # without a validation split) reaches this; None: train every epoch.
    target_accuracy: float = None
    # The named recipe (registry.RECIPES) this run's defaults came from; None: none.
    recipe: str = None
    data_dir: str = None
    manual_dir: str = None
    # None: XLA on the JAX backend (without it JAX runs every op eagerly), off on the
    # others. On CPU, XLA's convolutions train LeNet-5 ~3x slower than TensorFlow's oneDNN
    # kernels (benchmarks/README.md); Keras itself turns XLA off on CPU-only hosts.
    jit_compile: bool = None
    # Train steps run in one graph call per 64 batches: less Python and dispatch per step,
    # ~1.15x images/s on 2 CPU cores (more when the CPU is busy); same results as 1.
    steps_per_execution: int = 64
    # Keras backend: None is KERAS_BACKEND, else tensorflow (devices.py).
    backend: str = None
    # "off", "mirrored" (tf.distribute, TensorFlow) or "data-parallel" (Keras
    # distribution API, JAX); batch_size stays the global batch, the rate is not rescaled.
    distribute: str = "off"
    # "float32", "mixed_bfloat16" or "mixed_float16": Keras dtype policies. model.keras
    # and exports are float32 whatever trained them. "auto": mixed_bfloat16 only where
    # the registry measured it faster at the same accuracy for this model and this CPU's
    # bf16 kind (devices.auto_precision), else float32; config.json records the policy
    # used, and a resumed run keeps its own.
    precision: str = "auto"
    # Keyword arguments for the model's builder on top of its registry spec's, e.g.
    # {"width": 0.75} for mobilenet_mini (``--model-arg width=0.75``).
    model_args: dict = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def to_json(self):
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def for_model(cls, model, recipe=None, **options):
        """A config with the model's registry training defaults (``ModelSpec.train``),
        then the named ``recipe``'s (registry.RECIPES), under the given options; options
        that are None keep the defaults. ``model`` None: the recipe's, else lenet5."""
        given = {k: v for k, v in options.items() if v is not None}
        settings = get_recipe(recipe) if recipe is not None else {}
        recipe_model = settings.pop("model", None)
        model = model or recipe_model or cls.model
        if model != recipe_model:
            # A recipe's builder arguments are for its own model, not the one given instead.
            settings.pop("model_args", None)
        elif "model_args" in given:
            # --model-arg is one argument at a time: it changes that one, keeps the others.
            given["model_args"] = {**settings.get("model_args", {}), **given["model_args"]}
        return cls(model=model, recipe=recipe,
                   **{**get_spec(model).train, **settings, **given})

    # The options a registry model's recipe may change (ModelSpec.train).
    RECIPE_FIELDS = ("learning_rate", "batch_size", "augment", "label_smoothing",
                     "weight_decay", "warmup_epochs")

    def recipe_changes(self):
        """The recipe options that differ from the global defaults, e.g. "augment=flip";
        "" when none do. A named recipe comes first with every value it sets, e.g.
        "fast (model=lenet5, epochs=6, ...)"."""
        default = TrainConfig()
        named = list(get_recipe(self.recipe)) if self.recipe else []
        changed = []
        for name in self.RECIPE_FIELDS:
            value = getattr(self, name)
            if value != getattr(default, name) and name not in named:
                changed.append(f"{name}={value}")
        if named:
            values = ", ".join(f"{name}={getattr(self, name)}" for name in named)
            changed.insert(0, f"{self.recipe} ({values})")
        return ", ".join(changed)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise BadInput("config.json does not hold a JSON object")
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        # Runs written before augment was one value recorded a bool.
        if isinstance(data.get("augment"), bool):
            data["augment"] = "shift" if data["augment"] else "none"
        return cls(**data)

    @classmethod
    def from_file(cls, path):
        """A config.json (a run's, or tune's best.json); BadInput for a file that is
        missing or not a config."""
        try:
            text = open(path, encoding="utf-8").read()
        except OSError as error:
            raise BadInput(f"cannot read config '{path}': {error.strerror or error}") from None
        try:
            return replace(cls.from_json(text), created=cls().created)
        except (ValueError, TypeError) as error:
            raise BadInput(f"'{path}' is not a lenet-keras config.json: {error}") from None

    def check(self):
        """BadInput (one line, in terms of the options) for a config that cannot train.
        No TensorFlow needed: the CLI calls this before anything heavy is imported."""
        if not isinstance(self.model, str):
            raise BadInput(f"model must be a registry name, got {self.model!r}")
        spec = get_spec(self.model)
        self._check_types()
        check_choices(self.backend or default_backend(), self.distribute, self.precision)
        for name in ("epochs", "batch_size", "steps_per_execution"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BadInput(f"{name} must be a positive integer, got {value!r}")
        if self.epochs > MAX_EPOCHS or self.batch_size > MAX_BATCH_SIZE:
            name, value, bound = (("epochs", self.epochs, MAX_EPOCHS) if self.epochs > MAX_EPOCHS
                                  else ("batch_size", self.batch_size, MAX_BATCH_SIZE))
            raise BadInput(f"{name} must be at most {bound:,}, got {value:,}")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise BadInput(f"learning_rate must be a finite number > 0, got {self.learning_rate!r}")
        if not 0 <= self.val_split < 1:
            raise BadInput(f"val_split must be in [0, 1), got {self.val_split!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise BadInput(f"seed must be in [0, {MAX_SEED}], got {self.seed!r}")
        if self.image_size is not None and not spec.min_image_size <= self.image_size <= MAX_IMAGE_SIZE:
            raise BadInput(f"image_size must be in [{spec.min_image_size}, {MAX_IMAGE_SIZE}] "
                           f"for {self.model}, got {self.image_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise BadInput(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise BadInput(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.color not in COLORS:
            raise BadInput(f"color must be grayscale or rgb, got {self.color!r}")
        if self.early_stopping < 0:
            raise BadInput(f"early_stopping must be >= 0, got {self.early_stopping!r}")
        if self.augment not in AUGMENTATIONS:
            raise BadInput(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if not 0 <= self.label_smoothing < 1:
            raise BadInput(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise BadInput("weight_decay and warmup_epochs must be >= 0")
        if self.recipe is not None:
            get_recipe(self.recipe)
        target = self.target_accuracy
        if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                                   or not 0 < target <= 1):
            raise BadInput(f"target_accuracy must be a number in (0, 1], got {target!r}")
        check_model_args(self.model_args)
        return self

    # Fields that hold text (or None), whole numbers and numbers: config.json may be
    # edited by hand, and a wrong type must fail here, not deep inside export.
    # (Options with a fixed set of values are checked against it below.)
    TEXT_FIELDS = ("dataset", "data_dir", "manual_dir", "positive_class", "recipe")
    INT_FIELDS = ("seed", "image_size", "early_stopping", "warmup_epochs")
    NUMBER_FIELDS = ("learning_rate", "momentum", "val_split", "label_smoothing", "weight_decay")

    def _check_types(self):
        for name in self.TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise BadInput(f"{name} must be text, got {value!r}")
        for name in self.INT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise BadInput(f"{name} must be a whole number, got {value!r}")
        for name in self.NUMBER_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise BadInput(f"{name} must be a finite number, got {value!r}")
        if self.jit_compile is not None and not isinstance(self.jit_compile, bool):
            raise BadInput(f"jit_compile must be true, false or null, got {self.jit_compile!r}")

    def resolved(self):
        """This config with backend and jit_compile decided (as config.json records them)."""
        backend = self.backend or default_backend()
        jit = (backend == "jax") if self.jit_compile is None else self.jit_compile
        return replace(self, backend=backend, jit_compile=jit)




def check_model_args(model_args):
    """BadInput unless ``model_args`` maps names to JSON values (what config.json can hold);
    whether the builder takes them is checked when the model is built."""
    if not isinstance(model_args, dict):
        raise BadInput(f"model_args must be a mapping of builder arguments, got {model_args!r}")
    for name, value in model_args.items():
        if not (isinstance(name, str) and name.isidentifier()):
            raise BadInput(f"model argument names must be Python identifiers, got {name!r}")
        if name in DATA_ARGUMENTS:
            raise BadInput(f"model argument {name} comes from the dataset; use --image-size, "
                           f"--grayscale/--rgb or --positive-class instead")
        if not isinstance(value, (int, float, str, bool, list)):
            raise BadInput(f"model argument {name} must be a number, string or list, got {value!r}")


def parse_model_arg(text):
    """``"width=0.75"`` -> ``("width", 0.75)``: the value is read as JSON (numbers, true,
    [16, 32]) and kept as a string otherwise."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise BadInput(f"--model-arg takes NAME=VALUE (e.g. width=0.75), got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed
