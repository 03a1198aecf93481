"""tune: the search space, the checks that refuse bad input in one line, and real studies
on the embedded sample (SQLite: finish, kill and resume, two worker processes; a real
PostgreSQL server shared by two `tune` processes, as two hosts would)."""

import inspect
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT
from lenet_keras.config import TrainConfig
from lenet_keras.errors import BadInput
from lenet_keras.registry import MODELS, get_spec

optuna = pytest.importorskip("optuna", reason='pip install "lenet-keras[tune]"')

from lenet_keras import tune  # noqa: E402  (after the optuna skip)

SAMPLE_STUDY = ["--models", "lenet5_mini,lenet5", "--trials", 3, "--epochs", 1]


def load(study_dir, storage=None, name=None):
    """The study a `tune` command wrote (default: its SQLite file)."""
    url = storage or f"sqlite:///{Path(study_dir) / tune.STORAGE_FILE}"
    return optuna.load_study(study_name=name or Path(study_dir).name, storage=url)


def finished(study):
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(states=states)


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------
# The search space (no training)
# ---------------------------------------------------------------------------------------


def test_recipe_space_is_the_recipe_options_of_fit():
    assert set(tune.RECIPE_SPACE) == set(TrainConfig.RECIPE_FIELDS)


@pytest.mark.parametrize("model", sorted(tune.ARCHITECTURES))
def test_every_searched_argument_is_taken_by_the_builder(model):
    from lenet_keras import models

    assert model in MODELS
    builder = getattr(models, get_spec(model).builder or model)
    accepted = set(inspect.signature(builder).parameters)
    for arg, choices in tune.ARCHITECTURES[model].items():
        for choice in choices:
            assert set(tune.decode_choice(arg, choice)) <= accepted, (arg, choice)


@pytest.mark.parametrize("model", sorted(tune.ARCHITECTURES))
def test_first_choices_are_the_smallest_network(model):
    from lenet_keras.quiet import import_keras

    import_keras()
    from lenet_keras.models import build_model

    spaces = tune.ARCHITECTURES[model]
    smallest = build_model(model, (28, 28, 1), 10, **tune.smallest_args(model)).count_params()
    for arg, choices in spaces.items():
        for choice in choices[1:]:
            args = {**tune.smallest_args(model), **tune.decode_choice(arg, choice)}
            assert build_model(model, (28, 28, 1), 10, **args).count_params() >= smallest


def test_default_mobilenet_layout_is_a_searched_one():
    from lenet_keras.quiet import import_keras

    import_keras()
    from lenet_keras.models import MOBILENET_BLOCKS

    assert [list(b) for b in MOBILENET_BLOCKS] == tune.LAYOUTS["stem1_last7"]["blocks"]


def test_models_and_budgets_parse():
    assert tune.parse_models("lenet5, mobilenet_mini") == ["lenet5", "mobilenet_mini"]
    assert tune.parse_models("*") == sorted(MODELS)
    assert tune.parse_models("lenet5*,lenet5") == ["lenet5", "lenet5_bn", "lenet5_classic",
                                                    "lenet5_mini"]
    with pytest.raises(BadInput, match="unknown model 'lenet7'; did you mean lenet5"):
        tune.parse_models("lenet5,lenet7")
    assert [tune.parse_bytes(t) for t in ("65536", "64K", "64KB", "64kib", "1M")] == \
        [65536, 65536, 65536, 65536, 1024 ** 2]
    for bad in ("64Q", "-1", "0", "K"):
        with pytest.raises(BadInput):
            tune.parse_bytes(bad)


def test_front_marks_rows_no_other_row_beats():
    rows = [tune.TrialRow(n, "m", {}, acc, 1, "", {"int8_bytes": size})
            for n, acc, size in [(0, 0.9, 60_000), (1, 0.88, 70_000), (2, 0.87, 30_000),
                                 (3, 0.86, 30_000)]]
    assert [r.number for r in tune.mark_front(rows, "int8_bytes") if r.on_front] == [0, 2]


# ---------------------------------------------------------------------------------------
# Bad input: one line, exit 2, nothing written
# ---------------------------------------------------------------------------------------


def test_unknown_model_is_one_line(run_cli, tmp_path):
    result = run_cli("tune", "--models", "lenet5,mobilenet_big", cwd=tmp_path)
    assert "unknown model 'mobilenet_big'" in one_error_line(result)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("url, message", [
    ("not a url", "is not a database URL"),
    ("postgresql://tune:secret@127.0.0.1:1/tune", "cannot be reached"),
    ("nosuchdb://localhost/x", "is not a database URL"),
])
def test_bad_storage_is_one_line(run_cli, tmp_path, url, message):
    result = run_cli("tune", "--storage", url, "--trials", 1, "--epochs", 1, cwd=tmp_path)
    line = one_error_line(result)
    assert message in line and "secret" not in line
    assert not (tmp_path / "runs").exists()


def test_bad_budget_and_missing_config_are_one_line(run_cli, tmp_path):
    result = run_cli("tune", "--max-flash", "64Q", cwd=tmp_path)
    assert "a byte budget is a number with an optional K or M, got '64Q'" in one_error_line(result)
    result = run_cli("fit", "--config", tmp_path / "best.json", cwd=tmp_path)
    assert "cannot read config" in one_error_line(result)
    (tmp_path / "best.json").write_text("[1, 2]")
    result = run_cli("fit", "--config", tmp_path / "best.json", cwd=tmp_path)
    assert "is not a lenet-keras config.json" in one_error_line(result)
    assert not (tmp_path / "runs").exists()


def test_a_study_refuses_other_settings(tmp_path):
    settings = tune.check_settings(tune.TuneSettings(models=["lenet5"], root=str(tmp_path)))
    study = tune.open_study(settings, tune.open_storage(settings))
    tune.record_settings(study, settings)
    changed = tune.replace(settings, epochs=3)
    with pytest.raises(BadInput, match=r"study 'fashion_mnist_sample' was made with --epochs 5 "
                                       r"\(now 3\); rerun it with the same options"):
        tune.open_study(changed, tune.open_storage(changed))


@pytest.mark.slow
def test_impossible_budget_is_refused_after_measuring_the_smallest(run_cli, tmp_path):
    result = run_cli("tune", "--models", "lenet5,lenet5_mini", "--max-flash", 2000,
                     *SAMPLE_STUDY[2:], "--study", "tiny", cwd=tmp_path)
    line = one_error_line(result)
    assert line.startswith("Error: no model in lenet5, lenet5_mini fits the budget: the "
                           "smallest candidate, lenet5_mini, measures int8 ")
    assert "lenet5_mini: left out" in result.stdout
    assert not (tmp_path / "runs").exists()  # no study left to pin these options


@pytest.mark.slow
def test_measured_size_is_the_trained_exports(micro_export, tmp_path):
    """The budget is measured before training, on random weights: the file and the arena
    are those of the trained model's own export."""
    from lenet_keras.runs import load_config

    run_dir, _, report, _ = micro_export
    cost = tune.measure(load_config(run_dir), tmp_path / "scratch")
    assert cost["int8_bytes"] == report["formats"]["int8"]["bytes"]
    assert cost["arena_bytes"] == report["micro"]["arena_bytes"]
    assert not (tmp_path / "scratch").exists()


# ---------------------------------------------------------------------------------------
# Studies on the embedded sample
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_stopping_callback_leaves_a_finished_run(tmp_path):
    """train(callbacks=...): what the pruner uses. Stopped after epoch 1 of 3, the run is
    finished (metrics.json, model.keras of that epoch), not an interrupted one."""
    from lenet_keras.callbacks import EpochReport
    from lenet_keras.runs import read_history, read_metrics
    from lenet_keras.training import train

    seen = []
    report = EpochReport(lambda epoch, logs: seen.append((epoch, logs["val_accuracy"])) or True)
    train(TrainConfig(model="lenet5_mini", epochs=3), tmp_path / "run", log=lambda *_: None,
          callbacks=[report])
    history = read_history(tmp_path / "run")
    assert [row["epoch"] for row in history] == [1] and seen == [(1, history[0]["val_accuracy"])]
    assert read_metrics(tmp_path / "run")["epochs"] == 1
    assert not (tmp_path / "run" / "backup").exists()


def start_tune(*args, cwd):
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "lenet_keras", "tune", *map(str, args)],
                            cwd=cwd, env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for(condition, process, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


@pytest.mark.slow
def test_study_finishes_resumes_after_kill_and_retrains_the_winner(run_cli, tmp_path):
    study_dir = tmp_path / "runs" / "tune" / "s"
    args = [*SAMPLE_STUDY, "--study", "s"]
    process = start_tune(*args, cwd=tmp_path)
    # Killed mid-trial: trial 1 has started training (its config.json is written).
    wait_for(lambda: (study_dir / "trial-0001" / "config.json").exists(), process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = {t.number: t for t in load(study_dir).get_trials()}
    assert before[0].state == optuna.trial.TrialState.COMPLETE
    assert before[1].state == optuna.trial.TrialState.RUNNING

    result = run_cli("tune", *args, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "trial 1 was interrupted: queued again" in result.stdout
    study = load(study_dir)
    trials = {t.number: t for t in study.get_trials()}
    assert len(finished(study)) == 3
    assert trials[0].datetime_complete == before[0].datetime_complete  # kept, not rerun
    assert trials[1].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials.values() if t.system_attrs.get("failed_trial") == 1]
    assert len(retry) == 1 and retry[0].state.is_finished()
    assert retry[0].params == trials[1].params
    assert retry[0].user_attrs["run_dir"].endswith("trial-0001")  # its folder, resumed
    for trial in finished(study):  # every trial a finished run: export, evaluate work
        assert (Path(tmp_path, trial.user_attrs["run_dir"]) / "metrics.json").is_file()
    assert "3 trials trained; best:" in result.stdout
    assert (study_dir / "optimization_history.png").stat().st_size > 10_000

    best = json.loads((study_dir / "best.json").read_text())
    winner = max(finished(study), key=lambda t: t.value if t.value is not None else -1)
    assert best["tune"]["trial"] == winner.number and best["epochs"] == TrainConfig.epochs
    fit = run_cli("fit", "--config", study_dir / "best.json", "--epochs", 1,
                  "--run-dir", tmp_path / "retrain", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    config = json.loads((tmp_path / "retrain" / "config.json").read_text())
    assert config["epochs"] == 1
    for key in ("model", "model_args", *TrainConfig.RECIPE_FIELDS):
        assert config[key] == best[key], key


def check_shared(study, trials_wanted, workers):
    """Finished trials, numbers and run folders unique, and every worker took some."""
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == len({t._trial_id for t in trials})
    done = finished(study)
    assert trials_wanted <= len(done) <= trials_wanted + workers - 1
    run_dirs = [t.user_attrs["run_dir"] for t in done]
    assert len(run_dirs) == len(set(run_dirs))
    assert len({t.user_attrs["pid"] for t in trials}) == workers


@pytest.mark.slow
def test_two_worker_processes_share_one_sqlite_study(run_cli, tmp_path):
    result = run_cli("tune", "--models", "lenet5_mini", "--trials", 4, "--epochs", 1,
                     "--workers", 2, "--study", "w", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr
    check_shared(load(tmp_path / "runs" / "tune" / "w"), 4, 2)


# ---------------------------------------------------------------------------------------
# PostgreSQL: two `tune` processes on one study, as on two hosts
# ---------------------------------------------------------------------------------------


def postgres_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = found[-1] if found else (Path(shutil.which("initdb")) if shutil.which("initdb") else None)
    return initdb.resolve().parent if initdb else None


@pytest.fixture
def postgres_url():
    """A PostgreSQL server of our own on a free port, in a temporary folder (as the
    'postgres' user when run as root: the server refuses root); its URL."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg", reason='pip install "lenet-keras[tune]"')
    as_user = []
    folder = Path(tempfile.mkdtemp(prefix="lenet-keras-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"

    def run(*command):
        subprocess.run([*as_user, *map(str, command)], check=True, capture_output=True,
                       timeout=120)

    run(bin_dir / "initdb", "-D", data, "-U", "tune", "--auth=trust")
    run(bin_dir / "pg_ctl", "-D", data, "-w", "-l", folder / "log", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "tune", "tune")
        yield f"postgresql://tune@127.0.0.1:{port}/tune"
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_hosts_share_a_postgresql_study(postgres_url, tmp_path):
    args = ["--models", "lenet5_mini", "--trials", 4, "--epochs", 1, "--storage", postgres_url,
            "--study", "shared"]
    hosts = [tmp_path / "host0", tmp_path / "host1"]
    processes = []
    for k, host in enumerate(hosts):
        host.mkdir()
        processes.append(start_tune(*args, "--seed", k, cwd=host))
    for process in processes:
        output = process.communicate(timeout=900)[0]
        assert process.returncode == 0, output
    check_shared(load(None, postgres_url, "shared"), 4, 2)
