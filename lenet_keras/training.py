"""Training: ``train(config, run_dir)`` fits a TrainConfig into a run directory (``runs.py``
says what it holds). Read ``train`` top to bottom: check, place, load, build, fit, finish.

    >>> metrics = train(TrainConfig(model="lenet5", epochs=15), "runs/lenet5")

Everything that can be checked without TensorFlow (names, numbers, paths, the data of
local sources, the run directory's state) is checked before TensorFlow is imported, so
a mistake costs a fraction of a second and writes nothing.
"""

import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from lenet_keras import devices, runs
from lenet_keras.backends import process_index_from_env, tensorflow_available
from lenet_keras.config import TrainConfig
from lenet_keras.errors import BadInput
from lenet_keras.pipelines import build_batches, read_source
from lenet_keras.quiet import import_keras


def train(config, run_dir=None, log=print, overwrite=False, callbacks=()):
    """Train ``config`` into ``run_dir``; returns the metrics written to metrics.json
    (plus ``run_dir``).

    Args:
        config: a TrainConfig (model, dataset, epochs, backend, distribute, precision...).
        run_dir: where to write the run (default: runs/<model>-<dataset>-<time>/).
        log: called with each progress line.
        overwrite: retrain a finished run from scratch.
        callbacks: more Keras callbacks, run after the run's own (a stop leaves a finished run).

    Rerunning with the same config and run_dir resumes an interrupted run from its last
    completed epoch (weights, optimizer state, learning-rate schedule, history). A
    finished run raises runs.RunFinished unless ``overwrite``. Bad input raises BadInput
    before anything is written; what needs no TensorFlow is checked before it loads.

    The backend is ``config.backend`` (default: KERAS_BACKEND, else tensorflow); keras
    must not run on another one yet. In a multi-process data-parallel run, process 0
    writes the run directory; another writes only to a ``run_dir`` of its own.

    Example:
        >>> metrics = train(TrainConfig(model="lenet5", epochs=3), "runs/quick")
    """
    # 1. Check what needs no TensorFlow: the arguments, the options, the run folder, data.
    config = _checked(config, run_dir).check().resolved()
    devices.select_backend(config.backend)  # before keras is imported
    own_run_dir = run_dir is not None
    run_dir = Path(run_dir) if own_run_dir else runs.default_run_dir(config)
    if process_index_from_env() == 0:  # process 0 checks before waiting for others
        config = runs.check_run_dir(config, run_dir, overwrite)
    prepared = read_source(config)  # local data read and checked (numpy only)

    # 2. Place: keras on its backend, precision, devices, the other processes.
    placement = devices.place(config)
    config = replace(config, precision=placement.precision)  # auto resolved: config.json says which
    token = devices.run_token(placement)  # None unless several processes train
    writes = devices.claim_run_dir(placement, run_dir, own_run_dir, token)
    if writes and not placement.is_chief:
        config = runs.check_run_dir(config, run_dir, overwrite)

    # 3. Batches and the compiled model.
    bundle = build_batches(config, prepared, placement)
    keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    with placement.scope():  # MirroredStrategy creates its variables here
        model = build_for_config(config, bundle)

    # 4. Fit into the run folder, under its lock.
    if not writes:
        return _fit_without_writing(config, run_dir, bundle, model, log, placement, callbacks)
    run_dir.mkdir(parents=True, exist_ok=True)
    with runs.RunLock(run_dir):
        # Again under the lock: another fit may have finished (or started) this run since
        # the first check, which ran before TensorFlow loaded.
        config = runs.check_run_dir(config, run_dir, overwrite)
        if overwrite and runs.is_run_dir(run_dir):
            runs.clear_run(run_dir)
        if token is not None and placement.is_chief:
            devices.mark_shared(run_dir, token)  # again: --overwrite cleared it
        return _fit(config, run_dir, bundle, model, log, placement, extra=callbacks)


def _checked(config, run_dir):
    """BadInput for arguments of the wrong kind (``train("lenet5")``, ``run_dir=123``)."""
    if not isinstance(config, TrainConfig):
        raise BadInput(f"config must be a TrainConfig, e.g. TrainConfig(model='lenet5'), "
                       f"got {type(config).__name__} {config!r:.40}")
    if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
        raise BadInput(f"run_dir must be a folder path, got {type(run_dir).__name__} {run_dir!r:.40}")
    return config


# ---------------------------------------------------------------------------------------
# The compiled model
# ---------------------------------------------------------------------------------------


def learning_rate_schedule(config, steps_per_epoch):
    """The config's rate: a constant, or cosine decay to 0 over the run (after a linear
    warm-up from 0 over ``warmup_epochs``)."""
    keras = import_keras()

    if config.schedule != "cosine":
        return config.learning_rate
    warmup_steps = config.warmup_epochs * steps_per_epoch
    total = max(1, config.epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else config.learning_rate,
        decay_steps=max(1, total - warmup_steps),
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def _optimizer(config, steps_per_epoch):
    keras = import_keras()

    learning_rate = learning_rate_schedule(config, steps_per_epoch)
    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=config.momentum, nesterov=True,
                                    weight_decay=decay)
    if decay:
        return keras.optimizers.AdamW(learning_rate, weight_decay=decay)
    return keras.optimizers.Adam(learning_rate)


def _loss(config):
    keras = import_keras()

    if config.label_smoothing:
        from lenet_keras.models import SmoothedSparseCrossentropy

        return SmoothedSparseCrossentropy(config.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def with_augmenter(network, augment):
    """``network`` behind the bundle's augmenter (``DatasetBundle.augment``), or itself.

    The wrapper shares the network's layers and weights and adds none (the random
    layers' seed states are not weights): its weights are the network's, in the same
    order, so checkpoints and model.keras (the float32 twin, no augmentation) are what
    the network alone gives. The random layers act in training only, so validation and
    evaluation see the source pixels; on JAX they run inside the jitted training step.
    """
    if augment is None:
        return network
    keras = import_keras()

    images = keras.Input(network.input_shape[1:], name="images")
    return keras.Model(images, network(augment(images)), name=f"{network.name}_augmented")


def build_for_config(config, bundle):
    """The compiled model a config describes, for the bundle's input and classes (with
    the bundle's augmenter in front where the model runs it: JAX, torch)."""
    keras = import_keras()  # quietly, before models.py imports keras
    from lenet_keras.models import build_model

    model = with_augmenter(build_model(config.model, bundle.image_shape,
                                       len(bundle.class_names), **config.model_args),
                           bundle.augment)
    steps = max(1, bundle.num_train // config.batch_size)
    model.compile(
        optimizer=_optimizer(config, steps),
        loss=_loss(config),
        metrics=["accuracy"],
        jit_compile=config.jit_compile,
        # MirroredStrategy fails in Keras 3's multi-step loop ("You must feed a value
        # for placeholder tensor", keras-team/keras issue 19246, open), and Keras' torch
        # trainer refuses more than one step per call: one step per call there.
        steps_per_execution=(1 if config.distribute == "mirrored" or config.backend == "torch"
                             else config.steps_per_execution),
    )
    if keras.backend.backend() == "jax" and config.distribute == "off":
        from lenet_keras import fused_steps

        if fused_steps.fuses_here():
            fused_steps.fuse_steps(model)  # the execution's steps in one compiled lax.scan
    return model


def _float32_twin(config, bundle):
    """The model.keras every run saves: the same network, float32, uncompiled, built
    outside any distribution (its weights are copied in at each save)."""
    from lenet_keras.models import build_model

    with devices.plain_float32():
        return build_model(config.model, bundle.image_shape, len(bundle.class_names),
                           **config.model_args)


def evaluate_model(model, dataset):
    """(loss, accuracy) of a compiled or uncompiled classifier on a dataset."""
    keras = import_keras()

    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])
    loss, accuracy = model.evaluate(dataset, verbose=0)
    return float(loss), float(accuracy)


# ---------------------------------------------------------------------------------------
# Fitting: announce, fit with the run's callbacks, evaluate the best model, write metrics
# ---------------------------------------------------------------------------------------


def _fit_without_writing(config, run_dir, bundle, model, log, placement, extra=()):
    """A data-parallel process that leaves the run directory to process 0.

    It still runs every callback, into a scratch directory: with JAX every computation
    on the model's (global) arrays, reading the learning rate for history.csv included,
    is one program that all processes must run together. A resumed run restores from
    process 0's backup, so all processes start at the same epoch.
    """
    restore = run_dir / "backup" if (run_dir / runs.SHARED_MARK).is_file() else None
    with tempfile.TemporaryDirectory(prefix=f"lenet_keras-process{placement.process_id}-") as scratch:
        metrics = _fit(config, Path(scratch), bundle, model, log, placement, restore_from=restore,
                       shown_dir=f"process {placement.process_id} writes no files", extra=extra)
    return {"run_dir": None, "process_id": placement.process_id,
            "train_seconds": metrics["train_seconds"],
            "train_images_per_second": metrics["train_images_per_second"]}


def _callbacks(config, run_dir, monitor, twin=None, log=print, restore_from=None):
    """(callbacks for fit, the timer, the best-model checkpoint), in the order they must run."""
    keras = import_keras()

    from lenet_keras.callbacks import (
        BestModelCheckpoint, HistoryCSV, RestoreOnly, ResumeState, TrainingTimer,
    )
    timer = TrainingTimer(config.batch_size)
    checkpoint = BestModelCheckpoint(run_dir / "model.keras", monitor, twin=twin)
    # A data-parallel process sharing process 0's run: resume from process 0's backup.
    restore = [RestoreOnly(str(restore_from))] if restore_from is not None else []
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        timer,
        # history and best model are saved before the backup: a kill between the two
        # makes the resumed run redo that epoch, so rows never go missing.
        HistoryCSV(run_dir),
        checkpoint,
        *restore,
        # Kept until metrics.json exists (deleted below), so a kill during the final
        # evaluation resumes with nothing left to train. Written atomically, so a kill
        # (even Ctrl-C) while it is written leaves the previous state to resume from.
        ResumeState(run_dir / "backup"),
    ]
    if tensorflow_available():  # Keras writes TensorBoard logs with tf.summary
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                     write_graph=False))
    else:
        log("no TensorBoard logs: they need TensorFlow (pip install tensorflow)")
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, patience=config.early_stopping, mode="max"))
    if config.target_accuracy is not None:  # after the checkpoint: that epoch is saved
        from lenet_keras.callbacks import StopAtAccuracy
        callbacks.append(StopAtAccuracy(monitor, config.target_accuracy))
    return callbacks, timer, checkpoint


def _announce(config, run_dir, bundle, model, log, placement, shown_dir=None):
    """Write config.json and labels.txt; say what trains on what, where and how."""
    if bundle.skipped_files:
        shown = ", ".join(bundle.skipped_files[:5])
        log(f"skipped {len(bundle.skipped_files)} unreadable file(s): {shown}"
            + (" ..." if len(bundle.skipped_files) > 5 else ""))
    runs.write_config(run_dir, config)
    runs.write_labels(run_dir, bundle.class_names)
    log(f"{config.model} ({model.count_params():,} params) on {bundle.name}: "
        f"{bundle.num_train} train / {bundle.num_val} val / {bundle.num_test} test images "
        f"{bundle.image_shape}, {len(bundle.class_names)} classes -> "
        + (shown_dir or str(run_dir)))
    log(placement.summary())
    if placement.precision_note:  # --precision auto chose bf16: say why
        log(placement.precision_note)
    if config.recipe_changes():
        # Say so when a model's registry recipe (or a flag) changes the training.
        log(f"recipe: {config.recipe_changes()}")


def _fit(config, run_dir, bundle, model, log, placement, restore_from=None, shown_dir=None,
         extra=()):
    keras = import_keras()

    _announce(config, run_dir, bundle, model, log, placement, shown_dir)
    monitor = "val_accuracy" if bundle.val is not None else "accuracy"
    # model.keras is always saved from an uncompiled float32 twin: no training loss (a
    # custom SmoothedSparseCrossentropy) in its compile config, so it loads in plain Keras.
    twin = _float32_twin(config, bundle)
    callbacks, timer, checkpoint = _callbacks(config, run_dir, monitor, twin, log, restore_from)
    if bundle.set_epoch is not None:  # epoch e shuffles by (seed, e), after a resume too
        callbacks.insert(0, keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs=None: bundle.set_epoch(epoch)))
    callbacks += list(extra)  # after the run folder's: a stop leaves that epoch saved
    started = time.perf_counter()
    model.fit(
        bundle.train,
        validation_data=bundle.val,
        epochs=config.epochs,
        callbacks=callbacks,
        class_weight=bundle.class_weight,
        shuffle=False,  # the pipeline shuffles (seeded); Keras cannot shuffle a Dataset
        verbose=1 if os.isatty(1) else 2,
    )
    train_seconds = time.perf_counter() - started
    # Back to plain float32 on no distribution: the evaluation below runs in each process
    # on its own, and later models built in this process are not mixed or distributed.
    keras.distribution.set_distribution(None)
    keras.config.set_dtype_policy("float32")
    return _finish(config, run_dir, bundle, model, log, placement, timer, checkpoint,
                   train_seconds)


def _finish(config, run_dir, bundle, model, log, placement, timer, checkpoint, train_seconds):
    """Evaluate the best epoch's model.keras on the test split and write metrics.json
    (which marks the run finished); the resume state goes."""
    keras = import_keras()

    history = runs.read_history(run_dir)
    stopped_on_nan = any(not math.isfinite(r.get("loss", 0.0)) for r in history)
    if stopped_on_nan:
        log(f"loss became NaN in epoch {len(history)}: training stopped; "
            + (f"keeping the best model (epoch {checkpoint.best_epoch})" if checkpoint.best_epoch
               else "no epoch finished with finite weights"))
    if not (run_dir / "model.keras").exists():
        raise BadInput("training produced no usable model (NaN loss in the first epoch); "
                       "lower --learning-rate")
    # model.keras is float32 (layers record their policy), whatever precision trained it.
    best = runs.load_model(run_dir / "model.keras")
    test_loss, test_accuracy = evaluate_model(best, bundle.test)
    reached = _target_epoch(config, history, "val_accuracy" if bundle.val is not None else "accuracy")
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "epochs": len(history),
        "best_epoch": checkpoint.best_epoch,
        # This process's training time; a resumed run counts only the part it ran.
        "train_seconds": round(train_seconds, 3),
        "train_images_per_second": round(timer.images_per_second, 1),
        "compile_seconds": round(timer.compile_seconds or 0.0, 3),
        "params": int(model.count_params()),
        "num_train": bundle.num_train,
        "num_test": bundle.num_test,
        "skipped_files": len(bundle.skipped_files),
        "stopped_on_nan": stopped_on_nan,
        # --target-accuracy: whether (and in which epoch) the run reached it and stopped.
        "target_accuracy": config.target_accuracy,
        "stopped_at_target": reached is not None,
        "target_epoch": reached,
        "keras_version": keras.__version__,
        **placement.metrics(),  # backend, devices, replicas, processes, distribute, precision
        "python": platform.python_version(),
    }
    runs.write_metrics(run_dir, metrics)
    shutil.rmtree(run_dir / "backup", ignore_errors=True)
    return {**metrics, "run_dir": str(run_dir)}


def _target_epoch(config, history, monitor):
    """The first epoch (1-based) whose ``monitor`` reached ``config.target_accuracy``;
    None when there is no target or no epoch reached it."""
    if config.target_accuracy is None:
        return None
    return next((int(row["epoch"]) for row in history
                 if row.get(monitor, -math.inf) >= config.target_accuracy), None)
