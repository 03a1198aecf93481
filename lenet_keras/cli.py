"""lenet_keras command line: train, evaluate, export and inspect LeNet models.

    lenet-keras fit                        # LeNet-5 on the embedded Fashion-MNIST sample
    lenet-keras fit --dataset cifar10 --grayscale
    lenet-keras evaluate                   # the latest run
    lenet-keras models

(``python -m lenet_keras`` and ``python cli.py`` in a checkout are the same program.)
This module only parses options, calls the package and prints; the package checks its
input. Heavy imports (TensorFlow, Keras, matplotlib) happen inside the commands, after
the checks that need none, so `--help` and most mistakes cost a fraction of a second.
"""

import os
import sys
import traceback
import warnings
from dataclasses import fields, replace

import click

from lenet_keras.backends import BACKENDS, DISTRIBUTIONS, PRECISIONS
from lenet_keras.config import AUGMENTATIONS, OPTIMIZERS, SCHEDULES, TrainConfig, parse_model_arg
from lenet_keras.errors import BadInput, first_line
from lenet_keras.explaining import METHODS as EXPLAIN_METHODS
from lenet_keras.formats import CHOICES, FORMATS, TFLITE_FORMATS, get, parse_formats, select
from lenet_keras.quiet import DEBUG_ENV
from lenet_keras.registry import RECIPES

RECIPE_NAMES = tuple(RECIPES)


class OneLineErrors(click.Group):
    """A click group whose errors are one line on stderr: exit 2 for bad input (click's
    usage errors and BadInput), exit 1 for unexpected errors (traceback with --debug)."""

    def main(self, args=None, prog_name=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args
        # Debug mode and the warning filter last for this command only (an in-process
        # caller, such as a test with CliRunner, gets its environment back).
        previous_debug = os.environ.get(DEBUG_ENV)
        with warnings.catch_warnings():
            if debug:
                os.environ[DEBUG_ENV] = "1"  # lenet_keras.quiet shows native output too
            else:  # numpy, PIL, Keras warnings would break the one-line promise
                warnings.simplefilter("ignore")
            try:
                return self._main_one_line(args, prog_name, debug, **extra)
            finally:
                if previous_debug is None:
                    os.environ.pop(DEBUG_ENV, None)
                else:
                    os.environ[DEBUG_ENV] = previous_debug

    def _main_one_line(self, args, prog_name, debug, **extra):
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.exceptions.Abort as abort:
            if isinstance(abort.__cause__, EOFError):  # click turns EOFError into Abort
                click.echo(f"Internal error: EOFError: {first_line(abort.__cause__)} "
                           "(rerun with --debug for the traceback)", err=True)
                sys.exit(1)
            click.echo("Aborted.", err=True)
            sys.exit(130)
        except click.ClickException as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(2 if isinstance(error, click.UsageError) else error.exit_code)
        except BadInput as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as error:  # noqa: BLE001  one line, not a traceback
            if debug:
                traceback.print_exc()
            click.echo(f"Internal error: {type(error).__name__}: {first_line(error)} "
                       "(rerun with --debug for the traceback)", err=True)
            sys.exit(1)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def cli(debug):
    """Build, train and ship LeNet-5 and its family of small CNNs (Keras 3)."""


# ---------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------

POSITIVE = click.IntRange(min=1)
DEFAULTS = TrainConfig  # option defaults are the config's, so the two never disagree


# Options several commands share, defined once.
def run_dir_option(help_text, file_okay=True, multiple=False):
    return click.option("--run-dir", type=click.Path(file_okay=file_okay), default=None,
                        multiple=multiple, help=help_text)


def dataset_option(help_text):
    return click.option("--dataset", default=None, metavar="NAME|PATH", help=help_text)


def unsafe_option(help_text="Allow a model.keras that holds Python code (only if you trust it)."):
    return click.option("--unsafe", is_flag=True, help=help_text)


@cli.command()
@dataset_option("TFDS name, image folder, IDX folder or .npz (default: embedded sample).")
@click.option("--model", "model_name", default=None,
              help=f"Registry name; see `lenet-keras models`.  [default: the recipe's, "
                   f"else {DEFAULTS.model}]")
@click.option("--recipe", type=click.Choice(RECIPE_NAMES), default=None,
              # from registry.RECIPES itself: a hand-written copy still described lenet5
              help="Named training recipe: " + "; ".join(
                  TrainConfig.for_model(None, recipe=name).recipe_changes() for name in RECIPES)
              + " (docs/SPEED.md). Options you give win.")
@click.option("--target-accuracy", type=float, default=None, metavar="A",
              help="Stop after the first epoch whose validation accuracy reaches A.")
@click.option("--model-arg", "model_args", multiple=True, metavar="NAME=VALUE",
              help="Builder argument on top of the model's registry spec, e.g. width=0.75 "
                   "for mobilenet_mini (repeatable; saved in config.json).")
@click.option("--epochs", type=int, default=None,
              help=f"Training epochs.  [default: the recipe's, else {DEFAULTS.epochs}]")
@click.option("--batch-size", type=int, default=None,
              help=f"Images per batch.  [default: the model's, else {DEFAULTS.batch_size}]")
@click.option("--learning-rate", type=float, default=None,
              help=f"Peak learning rate.  [default: the model's, else {DEFAULTS.learning_rate}]")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=DEFAULTS.optimizer,
              show_default=True, help="Adam, or SGD with Nesterov momentum.")
@click.option("--schedule", type=click.Choice(SCHEDULES), default=DEFAULTS.schedule,
              show_default=True, help="Learning-rate schedule.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seed for weights, shuffling and the validation split.")
@run_dir_option("Where to write the run (default: runs/<model>-<dataset>-<time>/).",
                file_okay=False)
@click.option("--image-size", type=int, default=None,
              help="Resize images to N x N (default: the dataset's size; 32 for folders).")
@click.option("--grayscale/--rgb", "grayscale", default=None,
              help="Convert images to 1 or 3 channels (default: as the dataset).")
@click.option("--val-split", type=float, default=DEFAULTS.val_split, show_default=True,
              help="Fraction of training images held out for validation.")
@click.option("--augment", type=click.Choice(AUGMENTATIONS),
              is_flag=False, flag_value="shift", default=None,
              help="Training augmentation; bare --augment means shift: random shifts and "
                   "zooms (flips for RGB).  [default: the model's, else none]")
@click.option("--label-smoothing", type=float, default=None,
              help="Label smoothing of the cross-entropy.  [default: the model's, else 0]")
@click.option("--weight-decay", type=float, default=None,
              help="Decoupled weight decay (AdamW).  [default: the model's, else 0]")
@click.option("--warmup-epochs", type=int, default=None,
              help="Linear learning-rate warm-up epochs.  [default: the model's, else 0]")
@click.option("--positive-class", default=None, metavar="NAME",
              help="One-vs-rest binary task for this class (e.g. hot_dog).")
@click.option("--early-stopping", type=int, default=DEFAULTS.early_stopping,
              help="Stop after N epochs without validation improvement (0: off).")
@click.option("--data-dir", type=click.Path(), default=None, help="TFDS data directory.")
@click.option("--manual-dir", type=click.Path(), default=None,
              help="Folder of TFDS archives you downloaded yourself.")
@click.option("--jit-compile/--no-jit-compile", default=None,
              help="XLA-compile the training step (default: on for jax, off otherwise; "
                   "slower on CPU with tensorflow).")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Keras backend (default: KERAS_BACKEND, else tensorflow).")
@click.option("--distribute", type=click.Choice(DISTRIBUTIONS),
              default=DEFAULTS.distribute, show_default=True,
              help="mirrored: tf.distribute over local GPUs (tensorflow); data-parallel: "
                   "Keras DataParallel over all devices and KERAS_DISTRIBUTION_* processes (jax). "
                   "--batch-size is the global batch.")
@click.option("--precision", type=click.Choice(PRECISIONS),
              default=DEFAULTS.precision, show_default=True,
              help="Keras dtype policy; auto: mixed_bfloat16 on a bf16 CPU where measured "
                   "faster for the model (docs/SPEED.md), else float32. model.keras and "
                   "exports stay float32.")
@click.option("--overwrite", is_flag=True, help="Retrain a finished run from scratch.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="Start from a config.json (a run's, or `tune`'s best.json); "
                                   "options given here override it.")
def fit(dataset, model_name, recipe, target_accuracy, model_args, epochs, batch_size,
        learning_rate, optimizer, schedule, seed, run_dir, image_size, grayscale, val_split, augment, label_smoothing, weight_decay,
        warmup_epochs, positive_class, early_stopping, data_dir, manual_dir, jit_compile,
        backend, distribute, precision, overwrite, config_file):
    """Train a model and write a run directory (model.keras, history.csv, metrics.json).

    Rerun with the same --run-dir to resume an interrupted run.
    """
    from lenet_keras.runs import RunFinished
    from lenet_keras.training import train

    # Options left unset take the model's registry recipe, then TrainConfig's defaults.
    config = TrainConfig.for_model(
        model_name, recipe=recipe, target_accuracy=target_accuracy,
        model_args=dict(parse_model_arg(arg) for arg in model_args) or None,
        dataset=dataset, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, optimizer=optimizer, schedule=schedule, seed=seed,
        val_split=val_split, image_size=image_size,
        color=None if grayscale is None else ("grayscale" if grayscale else "rgb"),
        augment=augment, label_smoothing=label_smoothing, weight_decay=weight_decay,
        warmup_epochs=warmup_epochs, positive_class=positive_class,
        early_stopping=early_stopping, data_dir=data_dir, manual_dir=manual_dir,
        jit_compile=jit_compile, backend=backend, distribute=distribute, precision=precision,
    )
    if config_file:
        config = _over_file(TrainConfig.from_file(config_file), config)
    try:
        metrics = train(config, run_dir, log=click.echo, overwrite=overwrite)
    except RunFinished as done:
        click.echo(f"{done.run_dir} is already finished (test accuracy "
                   f"{done.metrics.get('test_accuracy', float('nan')):.4f}); "
                   "pass --overwrite to train it again")
        return
    if metrics["run_dir"] is None:  # a data-parallel process that leaves writing to process 0
        click.echo(f"process {metrics['process_id']} done ({metrics['train_seconds']:.0f} s); "
                   "process 0 writes the run")
        return
    if metrics.get("target_accuracy") is not None:
        click.echo(f"validation accuracy reached {metrics['target_accuracy']} in epoch "
                   f"{metrics['target_epoch']}: stopped" if metrics["stopped_at_target"] else
                   f"validation accuracy did not reach {metrics['target_accuracy']}")
    # The first graph execution (tracing) is not timed: a run of one execution has no rate.
    speed = metrics["train_images_per_second"]
    rate = f", {speed:.0f} images/s" if speed else ""
    click.echo(
        f"test accuracy {metrics['test_accuracy']:.4f}, loss {metrics['test_loss']:.4f} "
        f"after {metrics['epochs']} epochs ({metrics['train_seconds']:.0f} s{rate}) "
        f"-> {metrics['run_dir']}"
    )


# fit's parameters that are TrainConfig fields under another name (run_dir, overwrite and
# config_file are not fields).
FIT_FIELDS = {"model_name": "model", "grayscale": "color"}


def _over_file(loaded, config):
    """``loaded`` (fit --config FILE) with the options given on the command line."""
    from click.core import ParameterSource

    context = click.get_current_context()
    names = {f.name for f in fields(TrainConfig)}
    given = {FIT_FIELDS.get(p, p) for p in context.params
             if context.get_parameter_source(p) not in (ParameterSource.DEFAULT,
                                                        ParameterSource.DEFAULT_MAP)}
    if config.recipe is not None and "recipe" in given:  # --recipe sets its options too
        from lenet_keras.registry import get_recipe

        given |= set(get_recipe(config.recipe))
    return replace(loaded, **{name: getattr(config, name) for name in given & names})


# ---------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------


@cli.command()
@run_dir_option("Run to evaluate (default: latest).")
@dataset_option("Evaluate on another source with the same classes (default: the run's). "
                "A plain folder of class subfolders is used whole.")
@click.option("--explain", "explain_count", type=click.IntRange(min=0), default=0,
              metavar="N", help="Also write explained.png: N test images with their heat "
                                "maps (Grad-CAM), mistakes first.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the figures (default: the run directory).")
@unsafe_option()
def evaluate(run_dir, dataset, explain_count, out, unsafe):
    """Test accuracy, loss and per-class accuracy of a run's best model.

    Writes confusion_matrix.png (normalised per true class) and samples.png (test images
    with predicted and true class, mistakes in red) into the run directory; with
    --explain N, explained.png too.
    """
    from lenet_keras.errors import check_writable
    from lenet_keras.evaluate import evaluate_run, format_class_table, write_figures
    from lenet_keras.runs import check_not_training, resolve_run_dir

    if dataset:
        from lenet_keras.sources import source_kind

        source_kind(dataset)  # a missing path fails here, before the model is loaded
    resolved = resolve_run_dir(run_dir)
    check_not_training(resolved, "evaluate")  # its model.keras is a half-trained epoch's
    check_writable(out or resolved, "confusion_matrix.png and samples.png")  # before any work
    result = evaluate_run(resolved, dataset, safe_mode=not unsafe, explain=explain_count)
    if result.skipped_files:
        shown = ", ".join(result.skipped_files[:5])
        click.echo(f"skipped {len(result.skipped_files)} unreadable file(s): {shown}"
                   + (" ..." if len(result.skipped_files) > 5 else ""))
    click.echo(f"{result.run_dir}: test accuracy {result.accuracy:.4f}, loss {result.loss:.4f} "
               f"on {len(result.labels)} images of {result.dataset_name}")
    click.echo(format_class_table(result.class_names, result.confusion))
    if out:
        os.makedirs(out, exist_ok=True)
    paths = write_figures(result, out)
    click.echo("wrote " + ", ".join(str(p) for p in paths))


# ---------------------------------------------------------------------------------------
# plot-history
# ---------------------------------------------------------------------------------------


@cli.command("plot-history")
@run_dir_option("Run to plot (default: latest); repeat to overlay runs, e.g. mlp vs lenet5.",
                multiple=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Image file (.png/.pdf/.svg). Default: RUN_DIR/history.png for one run, "
                   "comparison.png beside the first run for several.")
def plot_history_command(run_dir, out):
    """Loss, accuracy (train and validation) and learning rate per epoch, best epoch starred."""
    from lenet_keras.plots import plot_history
    from lenet_keras.runs import resolve_run_dir

    resolved = [resolve_run_dir(d) for d in run_dir] or [resolve_run_dir(None)]
    from lenet_keras.errors import check_writable

    if out is None:
        out = (resolved[0] / "history.png" if len(resolved) == 1
               else resolved[0].parent / "comparison.png")
    check_writable(os.path.dirname(os.path.abspath(out)), os.path.basename(out))
    plot_history(resolved, out)
    click.echo(f"wrote {out}")


# ---------------------------------------------------------------------------------------
# export, predict
# ---------------------------------------------------------------------------------------


class ReleaseGateFailed(click.ClickException):
    """An export whose accuracy drop exceeds --max-drop: written, but exit 3."""

    exit_code = 3


def format_flags(command):
    """One switch per format-table row with a ``flag`` (--micro, --onnx), its help from
    the row."""
    for fmt in reversed([f for f in FORMATS if f.flag]):
        command = click.option(fmt.flag, fmt.name, is_flag=True, help=fmt.help)(command)
    return command


@cli.command("export")
@run_dir_option("Run to export (default: latest).")
@click.option("--out", type=click.Path(), default=None,
              help="Export directory (default: exports/<run-name>/); replaced atomically.")
@click.option("--tflite", is_flag=True,
              help=f"Also write {', '.join(get(name).file for name in TFLITE_FORMATS)}.")
@click.option("--quantize", default=None, metavar="LIST",
              help=f"Only these formats, comma-separated: {', '.join(CHOICES)} (instead of "
                   "--tflite's).")
@click.option("--calibration-samples", type=POSITIVE, default=300, show_default=True,
              metavar="N", help="Training-split images that calibrate the int8 model.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              metavar="PP", help="Exit 3 if any format's test accuracy is more than PP "
                                 "percentage points below the Keras model's.")
@format_flags
@unsafe_option()
def export_command(run_dir, out, tflite, quantize, calibration_samples, max_drop, unsafe,
                   **switches):
    """SavedModel (+ TFLite, ONNX) export with a verified report.json.

    Every format is checked against the run's own test split: accuracy, top-1 agreement
    with the Keras model and single-image latency (LiteRT and ONNX Runtime, 1 thread).
    Every .tflite carries its labels as metadata; model_mediapipe.tflite loads in
    MediaPipe Tasks' ImageClassifier as it is.
    """
    from lenet_keras.backends import require_tensorflow
    from lenet_keras.runs import resolve_run_dir

    formats = parse_formats(quantize) if quantize else (TFLITE_FORMATS if tflite else ())
    formats = (*formats, *(name for name, on in switches.items() if on))
    select(formats)  # an unknown format or a missing optional package: one line, no work
    require_tensorflow("export")
    run_dir = resolve_run_dir(run_dir)
    from lenet_keras.export import drops_over, export_run, format_table

    report = export_run(run_dir, out, formats=formats, calibration_samples=calibration_samples,
                        log=click.echo, safe_mode=not unsafe)
    click.echo(format_table(report))
    click.echo(f"wrote {report['export_dir']}")
    failed = drops_over(report, max_drop)
    if failed:
        worst = ", ".join(f"{name} {drop:+.2f} pp" for name, drop in failed.items())
        raise ReleaseGateFailed(f"accuracy drop over --max-drop {max_drop} pp: {worst}")


@cli.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--model", "model_path", type=click.Path(), default=None,
              help="A .keras file, SavedModel directory, .tflite or .onnx file "
                   "(default: the latest run's model.keras).")
@click.option("--top-k", type=POSITIVE, default=1, show_default=True,
              help="Labels to print per image.")
@unsafe_option("Allow a model.keras that holds Python code, or a SavedModel with ops "
               "lenet-keras exports never use (only if you trust it).")
def predict(images, model_path, top_k, unsafe):
    """Classify image files, one line each (`photo.jpg: hot_dog 0.97`).

    Images are converted and resized to the model's input. Unreadable files get one error
    line each on stderr and make the exit code 2.
    """
    from lenet_keras.predictors import predict_files, printable_path

    failed = []

    def report(path, message):
        click.echo(f"Error: {message}", err=True)
        failed.append(path)

    for path, ranked in predict_files(images, model_path, top_k, safe_mode=not unsafe,
                                      on_error=report):
        click.echo(f"{printable_path(path)}: " + ", ".join(f"{label} {p:.2f}" for label, p in ranked))
    if failed:
        sys.exit(2)


@cli.command("explain")
@click.argument("images", nargs=-1, required=True, type=click.Path())
@run_dir_option("Run whose model.keras to explain (default: latest).")
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="A .keras file instead of a run's.")
@click.option("--method", type=click.Choice(("all", *EXPLAIN_METHODS)), default="all",
              show_default=True, help="Heat-map method; all: every method the model allows.")
@click.option("--class", "class_name", default=None, metavar="NAME",
              help="Explain this class instead of the predicted one.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the PNGs (default: explain/ beside the model).")
@unsafe_option()
def explain_command(images, run_dir, model_path, method, class_name, out, unsafe):
    """What the network looks at: filters, feature maps and heat maps as PNGs.

    Writes filters.png (the first convolution's filters), IMAGE_feature_maps.png (each
    convolution/pooling stage's maps for the image) and IMAGE_METHOD.png (a heat map over
    the image for the predicted class, or --class). Images are read as predict reads them.
    """
    from lenet_keras.explaining import explain_files
    from lenet_keras.runs import resolve_run_dir

    if run_dir and model_path:
        raise BadInput("pass --run-dir or --model, not both")
    model_path = model_path or resolve_run_dir(run_dir) / "model.keras"
    written = explain_files(images, model_path, method, class_name, out, safe_mode=not unsafe)
    click.echo(f"wrote {len(written)} files to {written[0].parent}" if written else "wrote nothing")
    for path in written:
        click.echo(f"  {path.name}")


@cli.command()
@click.option("--model", "model_path", type=click.Path(), default=None,
              help="A .tflite, .onnx, .keras file or SavedModel directory (default: the "
                   "latest export's fastest .tflite, else the latest run's model.keras).")
@click.option("--export-dir", type=click.Path(), default=None,
              help="Serve this export's fastest .tflite as its report.json timed it (int8 "
                   "where none was timed; else its best other file).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 shares it with your network).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@unsafe_option()
def serve(model_path, export_dir, host, port, unsafe):
    """A web page and JSON API that classify your photos (Ctrl-C to stop).

    Open the printed URL and choose, drop or take a photo; or
    `curl -F file=@photo.jpg http://127.0.0.1:8000/api/predict`.
    """
    from lenet_keras.serve import run_server

    run_server(model=model_path, export_dir=export_dir, host=host, port=port,
               safe_mode=not unsafe, echo=click.echo)


# ---------------------------------------------------------------------------------------
# tune
# ---------------------------------------------------------------------------------------


def byte_budget(ctx, param, value):
    from lenet_keras.tune import parse_bytes

    return None if value is None else parse_bytes(value)


@cli.command("tune")
@dataset_option("TFDS name, image folder, IDX folder or .npz (default: embedded sample).")
@click.option("--models", "--model", "models", default="lenet5", show_default=True,
              metavar="A,B|GLOB", help='Registry models to search, comma-separated or a glob '
                                       '("*": all).')
@click.option("--trials", type=POSITIVE, default=20, show_default=True,
              help="Trained trials the study should hold (a rerun continues to this many; draws over budget do not count).")
@click.option("--epochs", type=POSITIVE, default=5, show_default=True,
              help="Training epochs per trial (hopeless trials are pruned earlier).")
@click.option("--max-flash", callback=byte_budget, default=None, metavar="BYTES",
              help="Largest int8 .tflite file, e.g. 65536 or 64K (1K = 1024 B).")
@click.option("--max-arena", callback=byte_budget, default=None, metavar="BYTES",
              help="Largest TFLite Micro arena, measured by running the int8 file.")
@click.option("--max-latency-us", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="US", help="Largest single-image int8 latency (LiteRT, 1 thread).")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage shared by workers, e.g. postgresql://user:pw@host/db "
                   "(default: sqlite runs/tune/STUDY/study.db).")
@click.option("--study", default=None, metavar="NAME",
              help="Study name; trials go to runs/tune/NAME/ (default: the dataset's name).")
@click.option("--workers", type=POSITIVE, default=1, show_default=True,
              help="Worker processes on this host (other hosts: the same --storage and --study).")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True,
              help="Seed of the sampler (worker k uses SEED + k) and of every trial's training.")
def tune_command(dataset, models, trials, epochs, max_flash, max_arena, max_latency_us, storage,
                 study, workers, seed):
    """Search models, builder arguments and recipes with Optuna, under device budgets.

    Every trial is a run folder runs/tune/STUDY/trial-NNNN/ scored on validation
    accuracy; budgets are measured on each architecture's int8 export (bytes, TFLM arena,
    latency). Rerun the same command to continue a killed study. Writes best.json
    (`lenet-keras fit --config runs/tune/STUDY/best.json` retrains the winner) and PNG plots.
    """
    from lenet_keras.tune import TuneSettings, format_rows, parse_models, tune

    settings = TuneSettings(dataset=dataset, models=parse_models(models), trials=trials,
                            epochs=epochs, max_flash=max_flash, max_arena=max_arena,
                            max_latency_us=max_latency_us, storage=storage, study=study,
                            workers=workers, seed=seed)
    summary = tune(settings, log=click.echo)
    over = f" ({summary.over_budget} draws over budget, not trained)" if summary.over_budget else ""
    click.echo(f"{summary.finished} trials trained{over}; best within budget "
               "(* on the accuracy/size front):" if settings.budgets else
               f"{summary.finished} trials trained; best:")
    if not summary.rows:
        click.echo("  none finished within budget yet; rerun with more --trials")
        return
    click.echo(format_rows(summary.rows, budgets=bool(settings.budgets)))
    click.echo(f"wrote {summary.best}" + "".join(f", {p}" for p in summary.plots))
    click.echo(f"retrain the winner: lenet-keras fit --config {summary.best}")


# ---------------------------------------------------------------------------------------
# models, datasets
# ---------------------------------------------------------------------------------------


@cli.command("models")
@click.option("--input-shape", default="28,28,1", show_default=True,
              help="H,W,C used to count parameters.")
@click.option("--classes", type=click.IntRange(min=2), default=10, show_default=True)
@click.option("--markdown", is_flag=True, help="Print the README's Markdown table instead.")
def models_command(input_shape, classes, markdown):
    """List the model registry: name, parameters, description."""
    try:
        shape = tuple(int(v) for v in input_shape.split(","))
        assert len(shape) == 3 and all(0 < v <= 1024 for v in shape)
    except (ValueError, AssertionError):
        raise BadInput(f"--input-shape must be H,W,C (e.g. 28,28,1), got '{input_shape}'") from None
    from lenet_keras.quiet import import_keras
    from lenet_keras.registry import MODELS

    import_keras()  # quietly, before models.py imports keras
    from lenet_keras.models import count_params

    rows = []
    for name, spec in MODELS.items():
        try:
            rows.append((name, f"{count_params(name, shape, classes):,}", spec.description))
        except BadInput:
            rows.append((name, "too small", spec.description))
    if markdown:
        click.echo(f"| name | params ({'x'.join(map(str, shape))}, {classes} classes) | what it is |")
        click.echo("|---|---:|---|")
        for name, params, description in rows:
            click.echo(f"| `{name}` | {params} | {description} |")
        return
    width = max(len(name) for name in MODELS) + 2
    click.echo(f"{'name':<{width}}{'params':>10}  description  (params at {input_shape}, "
               f"{classes} classes)")
    for name, params, description in rows:
        click.echo(f"{name:<{width}}{params:>10}  {description}")


@cli.command("datasets")
def datasets_command():
    """List the dataset sources `--dataset` accepts."""
    from lenet_keras.sources import SAMPLE_NAME, TFDS_EXAMPLES

    click.echo("Local (no network):")
    click.echo(f"  (default)            {SAMPLE_NAME}: 6,000 + 1,000 Fashion-MNIST images shipped in the package")
    click.echo("  PATH/                folder of images, one subfolder per class (optional train/ test/)")
    click.echo("  PATH/                folder of MNIST-format IDX files, e.g. /usr/share/datasets/fashion-mnist")
    click.echo("  PATH.npz             arrays x_train, y_train, x_test, y_test [, class_names]")
    click.echo("TensorFlow Datasets (downloaded on first use; --data-dir, --manual-dir):")
    for name, description in TFDS_EXAMPLES.items():
        click.echo(f"  {name:<20} {description}")
    click.echo("  ...and any other TFDS image classification name.")


def main():
    """Entry point of the ``lenet-keras`` console script and ``python -m lenet_keras``."""
    cli(prog_name="lenet-keras")
