"""The machine a run trains on: torch's threads from the usable cores and the sweep's launcher, and the CPU fallback
of a GPU config without a GPU (callbacks/run/machine.py)."""
import pytest
import torch

from callbacks.run.machine import fall_back_without_gpu, parallel_jobs, thread_count
from conftest import compose_config


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
    (dict(affinity=2, n_jobs=4, launcher="joblib"), 1, ["4 parallel jobs"]),            # never below 1
    (dict(affinity=16, cpus_per_task=4, launcher="submitit"), 4, ["cpus_per_task 4"]),
    (dict(affinity=2, cpus_per_task=8, launcher="submitit"), 2, ["cpus_per_task 8"]),
    (dict(), 1, ["no core count"]),
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
    (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=3"], {"cpus_per_task": 3, "launcher": "submitit"}),
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
