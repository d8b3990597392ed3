"""The machine a run trains on: torch's threads from the usable cores and the sweep's launcher, the CPU fallback
of a GPU config without a GPU, and what trainer=auto picks on each kind of machine (callbacks/run/machine.py;
train.py writes the pick into the config)."""
import pytest
import torch

from callbacks.run import machine
from callbacks.run.machine import cpu_flags, fall_back_without_gpu, parallel_jobs, speed_settings, thread_count
from conftest import compose_config, run_in_process
from train import resolve_auto_speed


def fake_machine(monkeypatch, cuda=False, cuda_bf16=False, flags=frozenset()):
    """A machine with (or without) a CUDA GPU, native bf16 on it, and these CPU flags (None: no /proc/cpuinfo)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: cuda and cuda_bf16)
    monkeypatch.setattr(machine, "cpu_flags", lambda: None if flags is None else set(flags))


@pytest.mark.parametrize("gpu, accelerator, flags, precision, benchmark, reason", [
    (dict(cuda=True, cuda_bf16=True), "auto", {"avx2"}, "bf16-mixed", True, "CUDA GPU with native bf16"),
    (dict(cuda=True, cuda_bf16=False), "gpu", {"avx2"}, "16-mixed", True, "without native bf16"),   # Volta, Turing
    (dict(cuda=True, cuda_bf16=True), "cpu", {"avx512_bf16"}, "bf16-mixed", False, "CPU has avx512_bf16"),
    (dict(), "auto", {"avx512f", "avx512_bf16"}, "bf16-mixed", False, "CPU has avx512_bf16"),
    (dict(), "auto", {"amx_tile", "amx_bf16"}, "bf16-mixed", False, "CPU has amx_bf16"),
    (dict(), "auto", {"avx2", "avx512f"}, "32-true", False, "CPU has no avx512_bf16 or amx_bf16"),  # emulated bf16
    (dict(), "auto", None, "32-true", False, "unknown (no /proc/cpuinfo)"),
])
def test_speed_settings_for_each_kind_of_machine(monkeypatch, gpu, accelerator, flags, precision, benchmark, reason):
    fake_machine(monkeypatch, flags=flags, **gpu)
    picked = speed_settings(accelerator)
    assert (picked.precision, picked.channels_last, picked.benchmark) == (precision, True, benchmark)
    assert reason in picked.reason, picked.reason


def test_cpu_flags_come_from_the_flags_line(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse avx512f avx512_bf16\n\n")
    assert cpu_flags(str(info)) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    info.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # ARM: no x86 flags line
    assert cpu_flags(str(info)) == set()
    assert cpu_flags(str(tmp_path / "missing")) is None


def test_the_default_trainer_is_auto_and_train_py_writes_concrete_values(monkeypatch):
    fake_machine(monkeypatch, flags={"avx512_bf16"})
    cfg = compose_config()
    assert cfg.trainer.precision == "auto" and cfg.trainer.benchmark == "auto"  # the choice is data until train.py
    why = resolve_auto_speed(cfg)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.benchmark is False and cfg.speed.channels_last
    assert why == "trainer=auto: bf16-mixed + channels_last (CPU has avx512_bf16)" == cfg.speed.auto_reason
    fake_machine(monkeypatch, cuda=True, cuda_bf16=True)
    cfg = compose_config()
    assert "bf16-mixed + channels_last + cudnn.benchmark (CUDA GPU" in resolve_auto_speed(cfg)
    assert cfg.trainer.benchmark is True


def test_trainer_auto_run_saves_what_it_picked_and_why_and_a_resume_picks_the_same(tmp_path):
    """A smoke run with trainer=auto on this machine, whatever it is: config.yaml holds concrete values, the header
    says why; a resume from its last.ckpt (which continues in that run directory) resolves the same way."""
    from omegaconf import OmegaConf

    expected = speed_settings()  # this machine, read as train.py reads it
    run_dir = tmp_path / "run"
    args = ["experiment=smoke", "trainer=auto", "data.num_train=128", "data.num_val=64", "data.batch_size=32",
            "trainer.max_epochs=1", "~callbacks.progress_bar", "~logger"]
    line = (f"speed       trainer=auto: {expected.precision} + channels_last"
            f"{' + cudnn.benchmark' * expected.benchmark} ({expected.reason})")
    for extra in ([], [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"]):
        said = run_in_process([*args, *extra], run_dir)[1]  # in-process: what the run saves and logs
        assert line in said, said[-3000:]
        saved = OmegaConf.load(run_dir / "config.yaml")
        assert (saved.trainer.precision, saved.trainer.benchmark) == (expected.precision, expected.benchmark)
        assert saved.speed.channels_last is True and saved.speed.auto_reason == line.split(maxsplit=1)[1]
    assert "Restored all states from the checkpoint" in said


def test_an_explicit_value_wins_over_auto(monkeypatch):
    fake_machine(monkeypatch, cuda=True, cuda_bf16=True)
    cfg = compose_config(["trainer.precision=32-true"])
    why = resolve_auto_speed(cfg)
    assert cfg.trainer.precision == "32-true" and cfg.trainer.benchmark is True  # only the auto value is filled
    assert why.startswith("trainer=auto: 32-true (trainer.precision given) + channels_last + cudnn.benchmark")
    cfg = compose_config(["trainer.benchmark=false", "speed.channels_last=false"])
    assert resolve_auto_speed(cfg) == "trainer=auto: bf16-mixed (CUDA GPU with native bf16)"
    for name in ("cpu", "cpu_fast", "gpu", "ddp", "default"):  # fixed trainers: nothing to resolve
        cfg = compose_config([f"trainer={name}"])
        before = (cfg.trainer.precision, cfg.trainer.benchmark, cfg.speed.channels_last)
        assert resolve_auto_speed(cfg) is None
        assert (cfg.trainer.precision, cfg.trainer.benchmark, cfg.speed.channels_last) == before


@pytest.mark.parametrize("overrides, precision", [
    (["trainer=cpu_fast"], "bf16-mixed"),                                  # bf16 runs on CPUs: kept
    (["trainer=gpu", "trainer.precision=bf16-mixed"], "bf16-mixed"),
    (["trainer=gpu", "trainer.precision=16-mixed"], "32-true"),            # fp16 autocast needs a GPU
    (["trainer=cpu", "trainer.precision=16"], "32-true"),
])
def test_without_a_gpu_only_fp16_falls_back_to_fp32(monkeypatch, overrides, precision):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose_config(overrides)
    fall_back_without_gpu(cfg)
    assert str(cfg.trainer.precision) == precision


@pytest.mark.parametrize("kw, threads, words", [
    (dict(affinity=16), 16, ["16 cores", "CPU affinity"]),
    (dict(omp="4", affinity=16), 4, ["OMP_NUM_THREADS=4"]),
    (dict(omp="8", affinity=2), 2, ["2 cores", "CPU affinity"]),                      # affinity smaller than OMP
    (dict(omp="garbage", affinity=3), 3, ["CPU affinity"]),
    (dict(affinity=16, cgroup="150000 100000"), 1, ["cgroup CPU limit 1.5"]),         # 1.5 CPUs: one whole core
    (dict(affinity=16, cgroup="400000 100000"), 4, ["4 cores", "cgroup"]),
    (dict(affinity=16, cgroup="max 100000"), 16, ["CPU affinity"]),                   # v2: no limit
    (dict(affinity=16, cgroup="-1 100000"), 16, ["CPU affinity"]),                    # v1: no limit
    (dict(affinity=2, n_jobs=2, launcher="joblib"), 1, ["2 cores", "2 parallel jobs", "joblib n_jobs=2"]),
    (dict(affinity=8, n_jobs=-1, launcher="joblib"), 1, ["8 parallel jobs", "n_jobs=-1"]),  # one job per core
    (dict(affinity=8, n_jobs=-2, launcher="joblib"), 1, ["7 parallel jobs"]),
    (dict(affinity=8, n_jobs=3, launcher="joblib"), 2, ["3 parallel jobs"]),
    # joblib's workers already hold cores // n_jobs in OMP_NUM_THREADS: not divided again (16 cores, 4 jobs: 4 each)
    (dict(omp="4", affinity=16, n_jobs=4, launcher="joblib"), 4, ["OMP_NUM_THREADS=4", "joblib's share per job"]),
    (dict(omp="1", affinity=2, n_jobs=2, launcher="joblib"), 1, ["OMP_NUM_THREADS=1"]),
    (dict(affinity=2, n_jobs=4, launcher="joblib"), 1, ["4 parallel jobs"]),            # never below 1
    (dict(affinity=16, cpus_per_task=4, launcher="submitit"), 4, ["cpus_per_task 4"]),
    (dict(affinity=2, cpus_per_task=8, launcher="submitit"), 2, ["cpus_per_task 8"]),
    (dict(), 1, ["no core count"]),
    (dict(affinity=2, processes=2), 1, ["2 cores", "2 training processes (trainer.devices)"]),  # CPU DDP: 2 x 1
    (dict(affinity=8, n_jobs=2, launcher="joblib", processes=2), 2, ["2 parallel jobs", "x 2 training processes"]),
    (dict(affinity=8, cpus_per_task=4, launcher="submitit", processes=2), 4, ["cpus_per_task 4"]),  # per task
    # submitit_local starts every job at once and tells none how many: the header says how to divide the cores
    (dict(affinity=2, launcher="submitit_local"), 2, ["submitit_local runs the sweep's jobs at once",
                                                      "hydra.launcher.cpus_per_task=<cores per job>"]),
    (dict(affinity=8, cpus_per_task=2, launcher="submitit_local"), 2, ["submitit_local cpus_per_task 2"]),
])
def test_thread_count_from_faked_machines(kw, threads, words):
    n, why = thread_count(None, **kw)
    assert n == threads, why
    for word in words:
        assert word in why, why


def test_speed_threads_wins_and_a_bad_value_is_named():
    assert thread_count(3, omp="1", affinity=1) == (3, "speed.threads")
    for bad in (0, -1, 1.5, "four", True):
        with pytest.raises(ValueError, match=r"speed\.threads must be null .* or an integer >= 1, got"):
            thread_count(bad, affinity=4)


@pytest.mark.parametrize("overrides, expected", [
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], {"n_jobs": 2, "launcher": "joblib"}),
    (["hydra/launcher=joblib"], {"n_jobs": -1, "launcher": "joblib"}),
    (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=3"],
     {"cpus_per_task": 3, "launcher": "submitit_local"}),
    (["hydra/launcher=submitit_slurm", "hydra.launcher.cpus_per_task=3"], {"cpus_per_task": 3, "launcher": "submitit"}),
    ([], {}),  # the basic launcher runs one job at a time
])
def test_parallel_jobs_come_from_the_sweeps_launcher(overrides, expected):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from conftest import CONF

    assert parallel_jobs() == {}  # not a sweep
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[*overrides, "hydra.mode=MULTIRUN"], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            assert parallel_jobs() == expected
        finally:
            HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("overrides, threads", [(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], 1),
                                                (["trainer=cpu"], 2)])
def test_a_ddp_run_on_cpu_shares_the_cores_among_its_processes(monkeypatch, overrides, threads):
    """trainer=ddp on a 2-core CPU started two processes of two threads each (the header said 'cpu x2, threads
    2'): two torch processes on 2 cores each using both slow each other down many times."""
    from callbacks.run import machine

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda: None)
    assert machine.usable_threads(compose_config(overrides))[0] == threads


def test_bf16_on_a_cpu_without_native_bf16_is_warned_of_and_kept():
    """trainer=cpu_fast on an AVX2-only CPU ran 2.75x slower than trainer=auto, with no word; now a start-up warning
    (the precision asked for stays). Native bf16, fp32 and an unknown CPU say nothing."""
    import warnings

    from omegaconf import OmegaConf

    from callbacks.run.machine import warn_emulated_bf16

    cfg = OmegaConf.create({"trainer": {"precision": "bf16-mixed"}})
    with pytest.warns(UserWarning, match=r"trainer.precision=bf16-mixed on a CPU without avx512_bf16 or amx_bf16: "
                                         r"bf16 is emulated here and slower than fp32"):
        warn_emulated_bf16(cfg, {"avx2", "fma"})
    assert cfg.trainer.precision == "bf16-mixed"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_emulated_bf16(cfg, {"avx2", "avx512_bf16"})
        warn_emulated_bf16(cfg, None)
        warn_emulated_bf16(OmegaConf.create({"trainer": {"precision": "32-true"}}), {"avx2"})
