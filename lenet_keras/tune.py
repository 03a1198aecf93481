"""Search models and training recipes under a device budget with Optuna: ``tune``.

    >>> settings = TuneSettings(dataset="/usr/share/datasets/fashion-mnist",
    ...                         models=["lenet5_bn", "alexnet_mini"], trials=20, epochs=5,
    ...                         max_flash=64 * 1024)
    >>> summary = tune(settings)

Each trial picks a registry model, its builder arguments (``ARCHITECTURES``) and the recipe
options ``fit`` has (``RECIPE_SPACE``), trains through the real ``training.train`` into a
normal run folder ``runs/tune/<study>/trial-NNNN/`` and is scored on the best epoch's
**validation** accuracy (the test split never chooses). Optuna's pruner sees the validation
accuracy after every epoch and stops hopeless trials.

Budgets are measured, not estimated: each architecture is exported once, as ``export``
does (``export_run(..., formats=("int8",), micro=True)``), and its int8 file bytes,
TensorFlow Lite Micro arena and int8 latency (report.json) become Optuna constraints. An
architecture over budget is never trained. The file's size and arena depend on the layers,
not on the weights' values (a test checks this against a trained run's export), so it is
measured before training, with random weights in every tensor (an untrained model's all-zero
biases would be deduplicated by the converter and measure smaller than a trained one).

A study lives in an Optuna storage: by default ``runs/tune/<study>/study.db`` (SQLite);
``--storage postgresql://...`` shares one between hosts. The same command again continues
it: finished trials are kept and an interrupted one is retried (resuming its run folder
from its last epoch). Workers, on one host (``--workers K``, processes) or on many (the
same ``--storage`` and ``--study``), draw trial numbers from the storage: the standard
Optuna way, no coordinator of ours.
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from lenet_keras import runs
from lenet_keras.config import TrainConfig
from lenet_keras.errors import BadInput, first_line, write_atomic
from lenet_keras.registry import check_input, get_spec, list_models

TUNE_ROOT = Path("runs") / "tune"
STORAGE_FILE = "study.db"
BEST_FILE = "best.json"

# Builder arguments searched per registry model (models without an entry are searched
# over the recipe only). In every list the smallest network comes first: the budget check
# measures each model's first choices as its smallest candidate. Layer sizes are written
# "16-32" because Optuna's choices are scalars. The layouts were the candidates of the
# hand-written mobilenet search this command replaces (docs/RESULTS.md).
ARCHITECTURES = {
    "lenet5_bn": {"widths": ["8-16", "12-24", "16-32", "24-48", "32-64"],
                  "dense_units": ["32-32", "48-32", "64-32", "128-84"],
                  "dropout": [0.2, 0.4]},
    "alexnet_mini": {"widths": ["8-16-24-24-16", "12-24-32-32-24", "16-32-48-48-32"],
                     "dense_units": ["32-32", "64-64", "128-128", "256-256"],
                     "dropout": [0.25, 0.5]},
    "mlp": {"hidden": ["32", "64", "128-64", "300-100"]},
    "mobilenet_mini": {"width": [0.25, 0.35, 0.5, 0.75, 1.0],
                       "layout": ["stem2", "stem1_last4", "stem1_last7"],
                       "dropout": [0.1, 0.2]},
    "mobilenet_mini_050": {"layout": ["stem2", "stem1_last4", "stem1_last7"],
                           "dropout": [0.1, 0.2]},
}
# mobilenet_mini's layouts, (filters, stride) per depthwise-separable block: a stride-2
# stem (28 -> 14 -> 7 -> 4), or a stride-1 stem ending at 4x4 or, as models.py's default,
# at 7x7 (0.919, 0.925 and 0.928 on validation, 15 epochs: docs/RESULTS.md).
LAYOUTS = {
    "stem2": {"stem_strides": 2, "blocks": [[64, 1], [128, 2], [128, 1], [128, 1], [256, 2]]},
    "stem1_last4": {"stem_strides": 1,
                    "blocks": [[64, 2], [128, 1], [128, 2], [128, 1], [256, 2]]},
    "stem1_last7": {"stem_strides": 1,
                    "blocks": [[64, 2], [128, 1], [128, 2], [128, 1], [256, 1]]},
}
# The recipe options fit has (TrainConfig.RECIPE_FIELDS): (low, high) is a log-uniform
# range, a list is a set of choices. The choices were the hand-written recipe search's
# candidates (label smoothing 0.1, flips, shifts + flips, AdamW 0.05).
RECIPE_SPACE = {
    "learning_rate": (5e-4, 5e-3),
    "batch_size": [64, 128, 256],
    "augment": ["none", "flip", "shift", "shift+flip"],
    "label_smoothing": [0.0, 0.1],
    "weight_decay": [0.0, 0.01, 0.05],
    "warmup_epochs": [0, 1],
}
# The measuring export: training images that calibrate int8 (export's default) and that
# the export verifies the file on.
MEASURE_IMAGES = (300, 200)
# Builder arguments that change training only, not the exported file.
SIZE_FREE_ARGS = ("dropout",)
# Budget options -> the export report's number they bound.
BUDGETS = {"max_flash": "int8_bytes", "max_arena": "arena_bytes",
           "max_latency_us": "int8_latency_us"}
# The settings a study is made with; a rerun must repeat them (--trials, --workers and
# --seed may change: more trials continue the study).
STUDY_KEYS = ("dataset", "models", "epochs", "max_flash", "max_arena", "max_latency_us")
# Heartbeats let workers on other hosts fail and retry a trial whose worker died; a
# worker on this host retries its own dead trials at once (_retry_interrupted).
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
# Trained trials drawn at random before TPE models the others (Optuna's default is 10;
# a 20-trial study gets 8 random and 12 guided).
SAMPLER_STARTUP_TRIALS = 8
# At most this many draws per wanted trial (the rest: architectures over budget).
MAX_DRAWS_PER_TRIAL = 5
# The median pruner compares a trial with earlier ones at the same epoch, from the 2nd
# epoch on (the 1st says more about the learning rate's warm-up than about the end).
# Epochs are Optuna's steps, counted from 1; pruning starts at step == n_warmup_steps.
PRUNER_STARTUP_TRIALS = 4
PRUNER_FIRST_EPOCH = 2


@dataclass
class TuneSettings:
    """One ``tune`` command: what to search, how long, under which budgets, where."""

    dataset: str = None
    models: list = field(default_factory=lambda: ["lenet5"])
    trials: int = 20
    epochs: int = 5
    max_flash: int = None
    max_arena: int = None
    max_latency_us: float = None
    storage: str = None          # None: sqlite file runs/tune/<study>/study.db
    study: str = None            # None: the dataset's name
    workers: int = 1
    seed: int = 42
    root: str = str(TUNE_ROOT)

    @property
    def budgets(self):
        return {name: getattr(self, name) for name in BUDGETS if getattr(self, name) is not None}

    @property
    def study_dir(self):
        return Path(self.root) / self.study

    @property
    def storage_url(self):
        return self.storage or f"sqlite:///{(self.study_dir / STORAGE_FILE).resolve()}"


# ---------------------------------------------------------------------------------------
# Checks (no TensorFlow, no storage)
# ---------------------------------------------------------------------------------------


def parse_models(text):
    """"lenet5,mobilenet_mini" or globs ("*", "lenet5*") -> registry names; BadInput for
    a name that matches nothing."""
    names = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        matched = list_models(part) if any(c in part for c in "*?[") else [get_spec(part).name]
        if not matched:
            raise BadInput(f"--models pattern '{part}' matches no model; see `lenet-keras models`")
        names += [name for name in matched if name not in names]
    if not names:
        raise BadInput("--models needs at least one model name")
    return names


def parse_bytes(text):
    """"65536", "64K", "64KB", "64KiB" (1024 bytes each), "1M" -> bytes."""
    value = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1024, "M": 1024 ** 2}.get(value[-1:], 1)
    try:
        number = float(value[:-1] if scale > 1 else value)
    except ValueError:
        raise BadInput(f"a byte budget is a number with an optional K or M, got '{text}'") from None
    if not number > 0:
        raise BadInput(f"a byte budget must be positive, got '{text}'")
    return int(number * scale)


def check_settings(settings):
    """BadInput for settings that cannot run; returns them with the study name decided."""
    for name in ("trials", "epochs", "workers"):
        value = getattr(settings, name)
        if not isinstance(value, int) or value < 1:
            raise BadInput(f"--{name} must be a positive integer, got {value!r}")
    for name, value in settings.budgets.items():
        if not value > 0:
            raise BadInput(f"--{name.replace('_', '-')} must be positive, got {value!r}")
    models = [get_spec(name).name for name in settings.models]
    study = settings.study
    if study is None:
        from lenet_keras.sources import dataset_name

        study = dataset_name(settings.dataset)
    if not study or "/" in study or study.startswith("."):
        raise BadInput(f"--study must be a plain name (it names runs/tune/<study>/), got '{study}'")
    return replace(settings, models=models, study=study)


def base_config(settings, model):
    """The TrainConfig every trial of ``model`` starts from (the recipe goes on top)."""
    return TrainConfig.for_model(model, dataset=settings.dataset, epochs=settings.epochs,
                                 seed=settings.seed)


def check_data(settings):
    """Read the dataset once and check that every model can take its images: a bad path
    or a too-small image costs one line before the study opens."""
    from lenet_keras.pipelines import read_source

    config = base_config(settings, settings.models[0]).check()
    prepared = read_source(config, check_model=False)
    if prepared is not None:  # TFDS: checked when the first trial reads it
        for model in settings.models:
            check_input(model, prepared.image_shape, len(prepared.class_names))


# ---------------------------------------------------------------------------------------
# The search space
# ---------------------------------------------------------------------------------------


def decode_choice(arg, choice):
    """One chosen value -> builder keyword arguments: "16-32" -> [16, 32], a layout name
    -> its stem and blocks, anything else as it is."""
    if arg == "layout":
        return dict(LAYOUTS[choice])
    if isinstance(choice, str):
        return {arg: [int(v) for v in choice.split("-")]}
    return {arg: choice}


def model_args_of(model, choices):
    """{arg: chosen value} -> the builder arguments (config.model_args)."""
    args = {}
    for arg, choice in choices.items():
        args.update(decode_choice(arg, choice))
    return args


def smallest_args(model):
    """The builder arguments of ``model``'s smallest candidate (each list's first)."""
    return model_args_of(model, {arg: values[0] for arg, values in
                                 ARCHITECTURES.get(model, {}).items()})


def suggest(trial, models):
    """Optuna's choices for one trial -> its TrainConfig options (model, model_args and the
    recipe). Builder arguments are named per model ("mobilenet_mini.width")."""
    model = trial.suggest_categorical("model", models)
    choices = {arg: trial.suggest_categorical(f"{model}.{arg}", values)
               for arg, values in ARCHITECTURES.get(model, {}).items()}
    recipe = {}
    for name, space in RECIPE_SPACE.items():
        if isinstance(space, tuple):
            recipe[name] = trial.suggest_float(name, *space, log=True)
        else:
            recipe[name] = trial.suggest_categorical(name, space)
    return model, model_args_of(model, choices), recipe


def trial_config(settings, model, model_args, recipe):
    return replace(base_config(settings, model), model_args=model_args, **recipe).check()


def config_of(settings, trial):
    """A finished trial's TrainConfig, as recorded in the storage (the trial may have run
    on another host, with another --seed)."""
    if "config" in trial.user_attrs:
        return TrainConfig(**trial.user_attrs["config"])
    params = trial.params
    model = params["model"]
    choices = {arg: params[f"{model}.{arg}"] for arg in ARCHITECTURES.get(model, {})}
    return trial_config(settings, model, model_args_of(model, choices),
                        {name: params[name] for name in RECIPE_SPACE})


# ---------------------------------------------------------------------------------------
# Budgets, measured on the exported file
# ---------------------------------------------------------------------------------------


def architecture_key(config):
    """What the int8 file depends on: the model, its arguments (but dropout, which
    inference leaves out) and the data's shape."""
    parts = {k: getattr(config, k) for k in ("model", "dataset", "image_size", "color",
                                             "positive_class")}
    parts["model_args"] = {k: v for k, v in config.model_args.items() if k not in SIZE_FREE_ARGS}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def randomise_constants(model, seed):
    """Give every tensor that starts constant (biases, batch-norm statistics) distinct
    values, as training does: the converter stores identical constant buffers once, and
    a model whose activations vanish at initialization (mobilenet_mini) calibrates to an
    int8 SOFTMAX TFLM cannot run (micro.tflm_cannot_run). benchmarks/micro_budget.py
    measures with it too."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for variable in model.variables:
        value = np.asarray(variable.numpy())
        if value.size and np.all(value == value.flat[0]):
            variable.assign(value + rng.uniform(0.01, 0.1, value.shape).astype(value.dtype))


def measure(config, scratch, log=print):
    """Export ``config``'s architecture as ``export --quantize int8 --micro`` does and
    return its int8 bytes, measured TFLM arena and int8 latency (µs)."""
    from lenet_keras.export import export_run
    from lenet_keras.pipelines import read_source
    from lenet_keras.quiet import import_keras

    import_keras()
    from lenet_keras.models import build_model

    scratch = Path(scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    run_dir = scratch / "run"
    run_dir.mkdir(parents=True)
    prepared = read_source(config)
    if prepared is None:  # TFDS: the pipeline knows the shape
        from lenet_keras.pipelines import evaluation_batches

        bundle = evaluation_batches(config)
        shape, classes = bundle.image_shape, len(bundle.class_names)
    else:
        shape, classes = prepared.image_shape, len(prepared.class_names)
        config = _measuring_config(config, prepared, scratch)
    model = build_model(config.model, shape, classes, **config.model_args)
    randomise_constants(model, config.seed)
    runs.write_config(run_dir, config)
    model.save(run_dir / "model.keras")
    try:
        report = export_run(run_dir, scratch / "export", formats=("int8",), micro=True,
                            progress=False, log=lambda *_: None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    int8 = report["formats"]["int8"]
    return {"int8_bytes": int(int8["bytes"]), "arena_bytes": int(report["micro"]["arena_bytes"]),
            "int8_latency_us": round(float(int8["latency_us"]), 2),
            "params": int(model.count_params())}


def _measuring_config(config, prepared, scratch):
    """``config`` on a small .npz of its own training images (already converted) and
    class names: the export then calibrates on training images as usual and verifies on
    a few hundred others instead of the whole test split (its accuracy is not read here),
    in seconds; the file it writes is the same."""
    import numpy as np

    calibration, verification = MEASURE_IMAGES
    x, y = prepared.x_train, prepared.y_train
    # Named as the dataset: the .tflite metadata names it ("lenet5 trained on ...").
    path = scratch / f"{prepared.name}.npz"
    np.savez(path, x_train=x[:calibration], y_train=y[:calibration],
             x_test=x[calibration:calibration + verification],
             y_test=y[calibration:calibration + verification],
             class_names=np.array(prepared.class_names))
    return replace(config, dataset=str(path), val_split=0.0, image_size=None, color=None,
                   positive_class=None)


def cost_of(study, settings, config, log=print):
    """``measure``'s numbers for ``config``'s architecture, measured once per study (kept
    in the study's storage, so every worker and every rerun reuses them)."""
    key = f"cost:{architecture_key(config)}"
    cached = study.user_attrs.get(key)
    if cached is None:
        described = ", ".join(f"{k}={v}" for k, v in config.model_args.items()) or "defaults"
        log(f"measuring {config.model} ({described}): int8 export with --micro")
        cached = measure(config, settings.study_dir / ".measure" / f"{os.getpid()}", log)
        study.set_user_attr(key, cached)
    return cached


def violations(cost, budgets):
    """{budget option: measured value} for every budget the cost exceeds."""
    return {name: cost[BUDGETS[name]] for name, bound in budgets.items()
            if cost[BUDGETS[name]] > bound}




def check_budgets(study, settings, log=print):
    """Measure each model's smallest candidate; BadInput when none fits the budgets.
    Returns the models whose smallest candidate fits (the others are left out)."""
    if not settings.budgets:
        return settings.models
    fitting, smallest = [], None
    for model in settings.models:
        config = replace(base_config(settings, model), model_args=smallest_args(model))
        cost = cost_of(study, settings, config, log)
        over = violations(cost, settings.budgets)
        if over:
            log(f"{model}: left out, its smallest candidate is over budget "
                f"({_describe_over(over, settings.budgets)})")
        else:
            fitting.append(model)
        if smallest is None or cost["int8_bytes"] < smallest[1]["int8_bytes"]:
            smallest = (model, cost)
    if not fitting:
        model, cost = smallest
        raise BadInput(f"no model in {', '.join(settings.models)} fits the budget: the smallest "
                       f"candidate, {model}, measures {_describe_cost(cost)}")
    return fitting


def _describe_over(over, budgets):
    return ", ".join(f"{BUDGETS[name]} {value:,} > {budgets[name]:,}" for name, value in over.items())


def _describe_cost(cost):
    return (f"int8 {cost['int8_bytes']:,} B, arena {cost['arena_bytes']:,} B, "
            f"{cost['int8_latency_us']:.1f} µs")


# ---------------------------------------------------------------------------------------
# The study: storage, sampler, pruner
# ---------------------------------------------------------------------------------------


def import_optuna():
    """optuna, quietly (its experimental-feature warnings name features we chose), or
    BadInput naming the extra."""
    try:
        import optuna
    except ImportError:
        raise BadInput('tune needs Optuna: pip install "lenet-keras[tune]"') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(settings):
    """The study's RDB storage (SQLite file by default), with heartbeats; BadInput for a
    URL that does not parse, a missing database driver or a server that cannot be reached."""
    optuna = import_optuna()
    import sqlalchemy.exc

    url = settings.storage_url
    if settings.storage is None:
        settings.study_dir.mkdir(parents=True, exist_ok=True)
    # SQLite: wait for another worker's write instead of failing at once.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=3, inherit_intermediate_values=True))
            except sqlalchemy.exc.IntegrityError:
                # Workers starting together on an empty database race to create Optuna's
                # tables; the loser finds them made on the next try.
                if attempt == 2:
                    raise
                time.sleep(1 + attempt)
    except sqlalchemy.exc.ArgumentError:
        raise BadInput(f"--storage '{_shown(url)}' is not a database URL "
                       "(e.g. sqlite:///study.db, postgresql://user:password@host/db)") from None
    except ImportError as error:  # the URL's database driver (Optuna wraps the error)
        missing = getattr(error.__cause__, "name", None) or "its database driver"
        raise BadInput(f"--storage '{_shown(url)}' needs the Python package '{missing}' "
                       '(pip install "lenet-keras[tune]" for PostgreSQL)') from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise BadInput(f"--storage '{_shown(url)}' cannot be reached: "
                       f"{first_line(getattr(error, 'orig', None) or error)}") from None


def _shown(url):
    """A storage URL without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  not a URL at all: show it as given
        return url


def feasible_startup_sampler(optuna, seed, startup):
    """Random draws until ``startup`` trials have trained within budget, TPE after (it
    reads the budgets from each trial's constraints, ``Trial.set_constraint``). TPE's own
    start-up counts every finished trial, so draws over budget (pruned untrained, in
    seconds) would use it up and leave TPE one or two trained trials to model (seen on
    Fashion-MNIST under 64 KiB: it kept proposing the first trained one)."""

    class FeasibleStartupSampler(optuna.samplers.BaseSampler):
        def __init__(self):
            self.random = optuna.samplers.RandomSampler(seed=seed)
            self.tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                  n_startup_trials=0)
            self.chosen = {}

        def _sampler(self, study, trial):
            if trial.number not in self.chosen:
                self.chosen[trial.number] = (self.random if finished_count(study) < startup
                                             else self.tpe)
            return self.chosen[trial.number]

        def infer_relative_search_space(self, study, trial):
            return self._sampler(study, trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._sampler(study, trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, name, distribution):
            return self._sampler(study, trial).sample_independent(study, trial, name,
                                                                  distribution)

        def after_trial(self, study, trial, state, values):
            self.chosen.pop(trial.number, None)

        def reseed_rng(self):
            self.random.reseed_rng()
            self.tpe.reseed_rng()

    return FeasibleStartupSampler()


def open_study(settings, storage, worker=0):
    """Create the study or load it (same settings only); its sampler is random, then TPE
    with the budgets as constraints; its pruner the median rule."""
    optuna = import_optuna()

    # Each worker its own seed: equal seeds would draw the same random start-up trials.
    sampler = feasible_startup_sampler(optuna, settings.seed + worker, SAMPLER_STARTUP_TRIALS)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                         n_warmup_steps=PRUNER_FIRST_EPOCH)
    study = optuna.create_study(study_name=settings.study, storage=storage,
                                direction="maximize", sampler=sampler, pruner=pruner,
                                load_if_exists=True)
    wanted = {key: getattr(settings, key) for key in STUDY_KEYS}
    recorded = study.user_attrs.get("settings")
    if recorded is not None and recorded != wanted:
        changed = ", ".join(f"--{k.replace('_', '-')} {recorded.get(k)!r} (now {wanted[k]!r})"
                            for k in STUDY_KEYS if recorded.get(k) != wanted[k])
        raise BadInput(f"study '{settings.study}' was made with {changed}; rerun it with the "
                       "same options or choose another --study")
    return study


def record_settings(study, settings):
    """Pin the options that define the study (``open_study`` refuses others later)."""
    study.set_user_attr("settings", {key: getattr(settings, key) for key in STUDY_KEYS})


def finished_trials(study, trained=True):
    """The study's finished (COMPLETE or PRUNED) trials; with ``trained``, only those that
    trained (a trial over budget is pruned before training and costs one measurement)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return [t for t in done if not trained or feasible(t)]


def finished_count(study):
    return len(finished_trials(study))


class EnoughTrials:
    """Stops the study once it holds ``wanted`` trained trials (Optuna's MaxTrialsCallback
    counts by state, and would count the trials over budget)."""

    def __init__(self, wanted):
        self.wanted = wanted

    def __call__(self, study, trial):
        if finished_count(study) >= self.wanted:
            study.stop()


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def retry_interrupted(study, log=print):
    """Queue again the trials this host's killed or interrupted workers left (RUNNING
    with a dead process, or FAIL after Ctrl-C), once each. Other hosts' dead workers are
    found by Optuna's heartbeat; a retry reuses the trial's run folder (training resumes)."""
    import optuna
    from optuna.trial import TrialState

    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    for trial in trials:
        mine = trial.user_attrs.get("host") == socket.gethostname()
        if not mine or trial.number in retried:
            continue
        dead = trial.state == TrialState.RUNNING and not _alive(trial.user_attrs.get("pid"))
        if dead:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        if dead or (trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted")):
            log(f"trial {trial.number} was interrupted: queued again")
            retry(study, study._storage.get_trial(trial._trial_id))


# ---------------------------------------------------------------------------------------
# A trial: measure, train, report
# ---------------------------------------------------------------------------------------


def trial_run_dir(settings, trial):
    """runs/tune/<study>/trial-NNNN/; a retried trial continues its original's folder
    (the retry carries the original's user attributes, run_dir among them)."""
    return Path(trial.user_attrs.get("run_dir") or settings.study_dir / f"trial-{trial.number:04d}")


def best_validation(run_dir):
    values = [row["val_accuracy"] for row in runs.read_history(run_dir) if "val_accuracy" in row]
    if not values:
        raise BadInput("tune scores validation accuracy: use a dataset with a validation "
                       "split (--val-split > 0 is the default)")
    return max(values)


class Objective:
    """Optuna's objective: one trial = one run folder, scored on validation accuracy."""

    def __init__(self, settings, models, log=print):
        self.settings, self.models, self.log = settings, models, log

    def __call__(self, trial):
        import optuna

        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("interrupted", False)
        model, model_args, recipe = suggest(trial, self.models)
        config = trial_config(self.settings, model, model_args, recipe)
        trial.set_user_attr("config", {k: v for k, v in asdict(config).items() if k != "created"})
        if self.settings.budgets:
            self._check_cost(trial, config)
        run_dir = trial_run_dir(self.settings, trial)
        trial.set_user_attr("run_dir", str(run_dir))
        self.log(f"trial {trial.number}: {model} {model_args or ''} "
                 f"{', '.join(f'{k}={_short(v)}' for k, v in recipe.items())} -> {run_dir}")
        try:
            pruned = self._train(trial, config, run_dir)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        accuracy = best_validation(run_dir)
        if pruned:
            raise optuna.TrialPruned(f"validation accuracy {accuracy:.4f} below the median")
        return accuracy

    def _check_cost(self, trial, config):
        import optuna

        study = trial.study
        cost = cost_of(study, self.settings, config, self.log)
        for name, value in cost.items():
            trial.set_user_attr(name, value)
        for name, bound in self.settings.budgets.items():
            # Optuna's constraints: measured minus allowed (<= 0 is feasible); TPE reads them.
            trial.set_constraint(name, float(cost[BUDGETS[name]] - bound))
        over = violations(cost, self.settings.budgets)
        if over:  # never trained; the sampler learns the region is infeasible
            raise optuna.TrialPruned(f"over budget: {_describe_over(over, self.settings.budgets)}")

    def _train(self, trial, config, run_dir):
        """Train (or resume, or reuse a finished) run; True when the pruner stopped it."""
        from lenet_keras.callbacks import EpochReport
        from lenet_keras.training import train

        stopped = []

        def report(epoch, logs):
            if "val_accuracy" not in logs:
                return False
            trial.report(float(logs["val_accuracy"]), epoch)
            if trial.should_prune():
                stopped.append(epoch)
                return True
            return False

        try:
            train(config, run_dir, log=lambda line: self.log(f"  trial {trial.number}: {line}"),
                  callbacks=[EpochReport(report)])
        except runs.RunFinished:  # killed after training, before Optuna heard of it
            epochs = len(runs.read_history(run_dir))
            return epochs < config.epochs and not runs.read_metrics(run_dir).get("stopped_on_nan")
        finally:
            _clear_keras()
        return bool(stopped)


def _clear_keras():
    """Free the last trial's graphs: a worker trains many models in one process."""
    import keras

    keras.backend.clear_session()


def _short(value):
    return f"{value:.2g}" if isinstance(value, float) and value and value < 0.01 else value


# ---------------------------------------------------------------------------------------
# Workers
# ---------------------------------------------------------------------------------------


def run_worker(settings, models, worker=0, log=print):
    """One worker: run trials until the study holds ``settings.trials`` finished ones."""
    import_optuna()
    from lenet_keras.quiet import import_keras

    import_keras()
    study = open_study(settings, open_storage(settings), worker)
    remaining = settings.trials - finished_count(study)
    if remaining <= 0:
        return
    study.optimize(
        Objective(settings, models, log),
        # Stops every worker once the study holds that many trained trials (a worker
        # finishes the trial it is in: K workers may end with up to K - 1 more). The cap
        # bounds a search that keeps drawing architectures over budget.
        n_trials=MAX_DRAWS_PER_TRIAL * settings.trials,
        callbacks=[EnoughTrials(settings.trials)],
        catch=(BadInput,),  # a trial that fails (NaN loss) is recorded; the study goes on
        gc_after_trial=True)


def _child(settings, models, worker, threads):
    """A worker process (spawned: TensorFlow does not survive fork)."""
    # Read by TensorFlow when it starts (process_util.cc), so before it is imported here.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    from lenet_keras.quiet import import_keras

    import_keras()
    run_worker(settings, models, worker, log=lambda line: print(f"[worker {worker}] {line}",
                                                                 flush=True))


def run_workers(settings, models, log=print):
    """``settings.workers`` processes (or this one, for 1) on the study; waits for all."""
    if settings.workers == 1:
        run_worker(settings, models, 0, log)
        return
    context = multiprocessing.get_context("spawn")
    # The cores shared out: K workers each with all cores' threads would oversubscribe.
    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    children = [context.Process(target=_child, args=(settings, models, k, threads))
                for k in range(settings.workers)]
    for child in children:
        child.start()
    try:
        for child in children:
            child.join()
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
    failed = [k for k, child in enumerate(children) if child.exitcode not in (0, None)]
    if failed:
        log(f"worker(s) {', '.join(map(str, failed))} stopped with an error; rerun to continue")


# ---------------------------------------------------------------------------------------
# Results: the table, the front, best.json, the plots
# ---------------------------------------------------------------------------------------


@dataclass
class TrialRow:
    number: int
    model: str
    model_args: dict
    val_accuracy: float
    epochs: int
    run_dir: str
    cost: dict = None
    config: object = None         # its TrainConfig
    host: str = None              # where it ran (its run_dir is on that host)
    on_front: bool = False


def feasible(trial):
    return all(value <= 0 for value in trial.constraints.values())


def result_rows(study, settings):
    """The study's COMPLETE trials within budget, best validation accuracy first."""
    from optuna.trial import TrialState

    rows = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if not feasible(trial):
            continue
        config = config_of(settings, trial)
        cost = {key: trial.user_attrs[key] for key in BUDGETS.values() if key in trial.user_attrs}
        rows.append(TrialRow(trial.number, config.model, config.model_args,
                             float(trial.value), len(trial.intermediate_values),
                             trial.user_attrs.get("run_dir", ""), cost or None,
                             config=config, host=trial.user_attrs.get("host")))
    rows.sort(key=lambda row: (-row.val_accuracy, row.number))
    return mark_front(rows, "int8_bytes")


def mark_front(rows, cost_key):
    """Mark the rows no other row beats on both validation accuracy and ``cost_key``
    (the accuracy/size Pareto front); rows must be sorted best accuracy first."""
    lowest = float("inf")
    for row in rows:
        cost = (row.cost or {}).get(cost_key)
        row.on_front = cost is not None and cost < lowest
        if row.on_front:
            lowest = cost
    return rows


def format_rows(rows, limit=10, budgets=True):
    """The best trials as a fixed-width table (* marks the accuracy/size front)."""
    head = f"{'trial':>5}  {'model':<20}{'val acc':>8}{'epochs':>7}"
    if budgets:
        head += f"{'int8 B':>9}{'arena B':>9}{'int8 us':>9}"
    lines = [head + "  builder arguments"]
    for row in rows[:limit]:
        line = f"{row.number:>5}{'*' if row.on_front else ' '} {row.model:<20}" \
               f"{row.val_accuracy:>8.4f}{row.epochs:>7}"
        if budgets and row.cost:
            line += (f"{row.cost['int8_bytes']:>9,}{row.cost['arena_bytes']:>9,}"
                     f"{row.cost['int8_latency_us']:>9.1f}")
        lines.append(line + "  " + _args_text(row.model_args))
    return "\n".join(lines)


def _args_text(model_args):
    text = json.dumps(model_args, separators=(",", ":")) if model_args else "-"
    return text if len(text) <= 60 else text[:57] + "..."


def write_best(study_dir, row):
    """best.json: the winner's config with fit's default epochs, for
    ``lenet-keras fit --config best.json`` (a retrain on the same training split)."""
    config = replace(row.config, epochs=TrainConfig.epochs, created=TrainConfig().created)
    data = {**asdict(config), "tune": {"study_dir": str(study_dir), "trial": row.number,
                                       "run_dir": row.run_dir, "host": row.host,
                                       "val_accuracy": row.val_accuracy,
                                       "tuned_epochs": row.epochs, **(row.cost or {})}}
    path = Path(study_dir) / BEST_FILE
    write_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def write_plots(study, rows, study_dir, budgets=None, log=print):
    """optimization_history.png, param_importances.png (Optuna's matplotlib plots) and,
    with budgets, tradeoff.png (validation accuracy against int8 size and latency, the
    fronts marked); returns the paths written. A plot the study cannot make yet (too few
    trials) is skipped with a line."""
    import matplotlib

    matplotlib.use("Agg")  # Optuna draws with pyplot: never a display
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    from lenet_keras.plots import save_figure

    written = []
    if any(row.cost for row in rows):  # first: Optuna's plots switch pyplot to ggplot style
        written.append(save_figure(tradeoff_figure(rows, budgets), Path(study_dir) / "tradeoff.png"))
    for name, draw in (("optimization_history", optuna_plots.plot_optimization_history),
                       ("param_importances", optuna_plots.plot_param_importances)):
        try:
            axes = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            log(f"no {name}.png yet: {first_line(error)}")
            continue
        figure = axes.get_figure() if hasattr(axes, "get_figure") else axes.flat[0].get_figure()
        figure.set_size_inches(9, 5)
        figure.tight_layout()  # Optuna's figures cut long parameter names otherwise
        written.append(save_figure(figure, Path(study_dir) / f"{name}.png"))
        plt.close(figure)
    return written


def tradeoff_figure(rows, budgets=None):
    """Validation accuracy against int8 bytes and against int8 latency, each panel with
    its Pareto front drawn as a step line and its budget as a dashed line."""
    from lenet_keras.plots import _new_figure

    budgets = budgets or {}
    figure = _new_figure((11, 4.5))
    for axes, key, label, budget in zip(
            figure.subplots(1, 2), ("int8_bytes", "int8_latency_us"),
            ("int8 file (bytes)", "int8 latency (µs, 1 thread)"),
            (budgets.get("max_flash"), budgets.get("max_latency_us"))):
        if budget:
            axes.axvline(budget, color="tab:red", linestyle="--", linewidth=1, label="budget")
        points = [(row.cost[key], row.val_accuracy, row) for row in rows if row.cost]
        axes.scatter([p[0] for p in points], [p[1] for p in points], s=24, color="0.6",
                     label="trials within budget")
        front = [r for r in mark_front(list(rows), key) if r.on_front]
        front.sort(key=lambda r: r.cost[key])
        axes.step([r.cost[key] for r in front], [r.val_accuracy for r in front], where="post",
                  color="tab:red", marker="o", label="Pareto front")
        for row in front:
            axes.annotate(f"#{row.number} {row.model}", (row.cost[key], row.val_accuracy),
                          fontsize=7, xytext=(4, -10), textcoords="offset points")
        axes.set_xlabel(label)
        axes.set_ylabel("best validation accuracy")
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize=8)
    mark_front(rows, "int8_bytes")  # the rows' own marks: the size front
    return figure


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------


@dataclass
class TuneSummary:
    study: object
    rows: list
    best: Path = None
    plots: list = field(default_factory=list)
    finished: int = 0             # trials trained (COMPLETE or PRUNED by the pruner)
    over_budget: int = 0          # architectures drawn over budget, never trained


def tune(settings, log=print):
    """Run (or continue) a study to ``settings.trials`` finished trials; returns a
    TuneSummary (best trials, best.json, plots).

    Checked in this order, each a BadInput before the expensive step after it: settings
    and model names, the dataset and image sizes, the storage, the study's recorded
    settings, the budgets (each model's smallest candidate measured on its int8 export).
    """
    settings = check_settings(settings)
    optuna = import_optuna()
    check_data(settings)
    made = [p for p in (settings.study_dir, *settings.study_dir.parents) if not p.exists()]
    study = open_study(settings, open_storage(settings))
    try:
        models = check_budgets(study, settings, log)
    except BadInput:  # refused: leave no study behind that would pin these options
        if not study.trials:
            optuna.delete_study(study_name=settings.study, storage=study._storage)
            _remove_made(made)
        raise
    record_settings(study, settings)
    retry_interrupted(study, log)
    done = finished_count(study)
    if done < settings.trials:
        log(f"study '{settings.study}' in {_shown(settings.storage_url)}: {done} of {settings.trials} trials finished; searching {', '.join(models)} "
            f"with {settings.workers} worker(s)")
        run_workers(settings, models, log)
    return summarize(study, settings, log)


def _remove_made(folders):
    """Remove the folders this command made (nearest first), the study's with its files."""
    if folders:
        shutil.rmtree(folders[0], ignore_errors=True)
    for folder in folders[1:]:
        try:
            folder.rmdir()
        except OSError:
            break


def summarize(study, settings, log=print):
    """The study's best trials, best.json and the plots, as they stand."""
    rows = result_rows(study, settings)
    summary = TuneSummary(study, rows, finished=finished_count(study),
                          over_budget=len(finished_trials(study, trained=False)) - finished_count(study))
    if rows:
        summary.best = write_best(settings.study_dir, rows[0])
        summary.plots = write_plots(study, rows, settings.study_dir, settings.budgets, log)
    return summary
