"""``--precision auto``: mixed_bfloat16 only where the registry measured it faster for the
model on this CPU's kind of bf16, float32 everywhere else; what fit says and records.

The CPU is faked (cpuinfo text, or ``devices.cpu_bf16_kind`` replaced) so that every
branch runs on any machine: TensorFlow trains bf16 on a CPU without bf16 too, slowly.
"""

import json

import pytest

from lenet_keras import devices, runs
from lenet_keras.config import TrainConfig
from lenet_keras.errors import BadInput
from lenet_keras.registry import MODELS, get_spec

AMD_ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n" * 2
INTEL_SPR = ("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
             * 2)
NO_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n" * 2
ARM = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"


@pytest.mark.parametrize("cpuinfo, kind", [
    (AMD_ZEN4, "avx512_bf16"), (INTEL_SPR, "amx_bf16"), (NO_BF16, None), (ARM, None), ("", None),
    # A processor without it: threads may run there, so the CPU has none.
    (AMD_ZEN4 + NO_BF16, None),
])
def test_bf16_kind_comes_from_every_processor_flags(cpuinfo, kind):
    assert devices.cpu_bf16_kind(cpuinfo) == kind


def test_no_cpuinfo_means_no_bf16(monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "CPUINFO_PATH", str(tmp_path / "missing"))  # macOS, Windows
    assert devices.cpu_bf16_kind() is None
    (tmp_path / "cpuinfo").write_text(AMD_ZEN4)
    monkeypatch.setattr(devices, "CPUINFO_PATH", str(tmp_path / "cpuinfo"))
    assert devices.cpu_bf16_kind() == "avx512_bf16"


@pytest.fixture
def lenet5_wins(monkeypatch):
    """lenet5 measured 1.5x faster in bf16 on avx512_bf16 (whatever the registry says)."""
    monkeypatch.setitem(get_spec("lenet5").bf16_faster_on, "avx512_bf16", 1.5)
    monkeypatch.delitem(get_spec("lenet5").bf16_faster_on, "amx_bf16", raising=False)
    monkeypatch.delitem(get_spec("mlp").bf16_faster_on, "avx512_bf16", raising=False)


def test_auto_picks_bf16_only_where_the_registry_measured_a_win(lenet5_wins):
    policy, line = devices.auto_precision("lenet5", "tensorflow", cpuinfo=AMD_ZEN4)
    assert policy == "mixed_bfloat16"
    assert line == ("precision: mixed_bfloat16 (auto: 1.50x float32 for lenet5 on this "
                    "CPU's avx512_bf16, measured)")
    # Not measured on this kind (AMX), no bf16, another model, another network, a GPU,
    # another backend, a distributed run: float32, and nothing more to say.
    for model, backend, cpuinfo, options in [
        ("lenet5", "tensorflow", INTEL_SPR, {}),
        ("lenet5", "tensorflow", NO_BF16, {}),
        ("lenet5", "tensorflow", "", {}),
        ("mlp", "tensorflow", AMD_ZEN4, {}),
        ("lenet5", "tensorflow", AMD_ZEN4, {"model_args": {"widths": [8, 16]}}),
        ("lenet5", "tensorflow", AMD_ZEN4, {"on_gpu": True}),
        ("lenet5", "jax", AMD_ZEN4, {}),
        ("lenet5", "torch", AMD_ZEN4, {}),
        ("lenet5", "tensorflow", AMD_ZEN4, {"distribute": "mirrored"}),
    ]:
        assert devices.auto_precision(model, backend, cpuinfo=cpuinfo, **options) == ("float32", None), (
            model, backend, cpuinfo, options)


def test_registry_records_only_measured_kinds_and_wins():
    for spec in MODELS.values():
        for kind, speedup in spec.bf16_faster_on.items():
            assert kind in devices.BF16_KINDS, (spec.name, kind)
            assert speedup >= 1.10, (spec.name, speedup)  # benchmarks/precision.py WIN_RATIO


def test_auto_is_the_default_and_an_explicit_precision_is_kept():
    assert TrainConfig().precision == "auto"
    assert TrainConfig(precision="float32").check().resolved().precision == "float32"


@pytest.fixture
def small_npz(tmp_path):
    import numpy as np

    from lenet_keras.sources import SAMPLE_PATH

    sample = np.load(SAMPLE_PATH)
    path = tmp_path / "small.npz"
    np.savez(path, x_train=sample["x_train"][:128], y_train=sample["y_train"][:128],
             x_test=sample["x_test"][:32], y_test=sample["y_test"][:32],
             class_names=sample["class_names"])
    return path


@pytest.mark.parametrize("given, expected", [(None, "mixed_bfloat16"), ("float32", "float32")])
def test_fit_says_and_records_what_auto_chose(lenet5_wins, monkeypatch, invoke, small_npz,
                                              tmp_path, given, expected):
    monkeypatch.setattr(devices, "cpu_bf16_kind", lambda cpuinfo=None: "avx512_bf16")
    run_dir = tmp_path / "run"
    extra = ["--precision", given] if given else []
    result = invoke("fit", "--dataset", small_npz, "--epochs", "1", "--batch-size", "32",
                    "--run-dir", run_dir, *extra)
    assert result.exit_code == 0, result.output
    note = "precision: mixed_bfloat16 (auto: 1.50x float32 for lenet5 on this CPU's avx512_bf16, measured)"
    assert (note in result.output.splitlines()) == (given is None)
    assert f"(tensorflow, {expected})" in result.output
    assert json.loads((run_dir / "config.json").read_text())["precision"] == expected
    assert json.loads((run_dir / "metrics.json").read_text())["precision"] == expected


def test_resume_keeps_the_precision_the_run_started_in(lenet5_wins, monkeypatch, tmp_path):
    monkeypatch.setattr(devices, "cpu_bf16_kind", lambda cpuinfo=None: "avx512_bf16")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(TrainConfig(precision="float32").resolved().to_json())
    resumed = runs.check_run_dir(TrainConfig().check().resolved(), run_dir)
    assert resumed.precision == "float32"  # a run from before auto: float32, as it began
    with pytest.raises(BadInput, match="other options \\(precision\\)"):
        runs.check_run_dir(TrainConfig(precision="mixed_bfloat16").resolved(), run_dir)


@pytest.mark.parametrize("args", [["--precision", "bf16"], ["--precision", ""]])
def test_a_bad_precision_is_one_line_and_exit_2(run_cli, tmp_path, args):
    done = run_cli("fit", "--epochs", "1", "--run-dir", tmp_path / "run", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "'--precision'" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_bad_precision_in_a_config_file_is_one_line(run_cli, tmp_path):
    config = json.loads(TrainConfig().to_json())
    (tmp_path / "config.json").write_text(json.dumps({**config, "precision": "bfloat16"}))
    done = run_cli("fit", "--config", tmp_path / "config.json", "--run-dir", tmp_path / "run",
                   cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "precision must be one of auto," in done.stderr
    assert not (tmp_path / "run").exists()


def test_fit_on_this_cpu_follows_the_registry(run_cli, small_npz, tmp_path):
    """The real CLI, no fakes: bf16 and its line where the registry lists this CPU's kind
    for lenet5 (AMD Zen 4 here), float32 and no line elsewhere."""
    kind = devices.cpu_bf16_kind()
    expected = "mixed_bfloat16" if kind in get_spec("lenet5").bf16_faster_on else "float32"
    done = run_cli("fit", "--dataset", small_npz, "--epochs", "1", "--batch-size", "32",
                   "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"(tensorflow, {expected})" in done.stdout
    assert ("precision: mixed_bfloat16 (auto: " in done.stdout) == (expected != "float32")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == expected
