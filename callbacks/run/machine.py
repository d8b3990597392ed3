"""The machine a run trains on: the CPU threads torch may use (cores, OMP_NUM_THREADS, CPU affinity, cgroup limits,
shared among a sweep's parallel jobs) and the CPU fallback of a GPU config on a machine without a GPU."""
from __future__ import annotations

import os
import warnings

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from callbacks.run.hydra_job import is_multirun


def fall_back_without_gpu(cfg: DictConfig) -> None:
    """A config that asks for a GPU (trainer=gpu/ddp) on a machine without one runs on the CPU instead, with a
    warning: fp32 instead of fp16 (bf16 runs on CPUs and is kept), no cudnn.benchmark, no compile (minutes of
    compiling on few cores). channels_last is kept: it is oneDNN's native conv layout on x86 CPUs too (same math,
    faster). Explicit CPU configs are left as they are."""
    if torch.cuda.is_available():
        return
    wants_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    fallbacks = {
        "trainer.accelerator": (wants_gpu, "cpu"),
        "trainer.precision": (str(cfg.trainer.get("precision")).startswith("16"), "32-true"),  # fp16, not bf16
        "trainer.benchmark": (wants_gpu and bool(cfg.trainer.get("benchmark")), False),
        "speed.compile": (wants_gpu and bool(cfg.speed.get("compile")), False),
    }
    changed = [f"{key}={value}" for key, (fall_back, value) in fallbacks.items() if fall_back]
    for key, (fall_back, value) in fallbacks.items():
        if fall_back:
            OmegaConf.update(cfg, key, value)
    if changed:
        warnings.warn(f"No CUDA GPU found: falling back to {', '.join(changed)}", stacklevel=2)


def thread_count(setting, omp: str | None = None, affinity: int | None = None, cgroup: str | None = None,
                 n_jobs: int = 1, cpus_per_task: int | None = None, launcher: str = "") -> tuple[int, str]:
    """Torch's intra-op threads for this process, and why (pure: the machine is read by ``usable_threads``).

    ``setting``: ``speed.threads`` (an int >= 1 wins; null: work it out). Usable cores: the smallest of
    ``omp`` (OMP_NUM_THREADS), ``affinity`` (CPUs this process may run on) and ``cgroup`` (cgroup CPU limit as
    "quota period", v2 ``cpu.max`` style; "max" or a negative quota: no limit). Then shared among the sweep jobs that
    run at once: ``cpus_per_task`` (submitit) caps each job, else ``n_jobs`` (joblib's n_jobs; negative: cores + 1 +
    n_jobs jobs, so -1 is one per core) divides the cores. Never below 1."""
    if setting is not None:
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ValueError(f"speed.threads must be null (the usable cores, shared among parallel sweep jobs) or an "
                             f"integer >= 1, got {setting!r}")
        return setting, "speed.threads"
    limits = {}
    if affinity is not None and affinity >= 1:
        limits["CPU affinity"] = affinity
    try:
        omp_threads = int(str(omp).split(",")[0])  # "4,2": nested levels, the first is ours
        if omp_threads >= 1:
            limits[f"OMP_NUM_THREADS={omp}"] = omp_threads
    except ValueError:
        pass
    try:
        quota, period = str(cgroup).split()[:2]
        if quota != "max" and float(quota) > 0 and float(period) > 0:
            limits[f"cgroup CPU limit {float(quota) / float(period):g}"] = max(1, int(float(quota) // float(period)))
    except ValueError:
        pass
    if not limits:
        return 1, "no core count found"
    source = min(limits, key=limits.get)
    cores = limits[source]
    why = f"{cores} cores, {source}"
    if cpus_per_task:
        threads = min(cores, int(cpus_per_task))
        return threads, f"{why}; {launcher or 'launcher'} cpus_per_task {cpus_per_task}"
    jobs = max(1, cores + 1 + n_jobs) if n_jobs < 0 else max(1, n_jobs)
    if jobs == 1:
        return cores, why
    return max(1, cores // jobs), f"{why} / {jobs} parallel jobs ({launcher or 'launcher'} n_jobs={n_jobs})"


def cgroup_cpu_limit() -> str | None:
    """This machine's cgroup CPU limit as "quota period" (v2 ``cpu.max``; v1 ``cfs_quota_us cfs_period_us``)."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            return f.read().strip()
    except OSError:
        pass
    for folder in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        try:
            with open(f"{folder}/cpu.cfs_quota_us") as q, open(f"{folder}/cpu.cfs_period_us") as p:
                return f"{q.read().strip()} {p.read().strip()}"
        except OSError:
            continue
    return None


def parallel_jobs() -> dict:
    """How this job shares the machine with the other jobs of its sweep, from Hydra's launcher config: joblib's
    n_jobs, submitit's cpus_per_task. (submitit_local starts every job at once and Hydra does not tell a job how
    many there are: without cpus_per_task its jobs are not divided.)"""
    if not is_multirun():
        return {}
    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        return {"n_jobs": int(launcher.get("n_jobs", -1)), "launcher": "joblib"}
    if "submitit" in target.lower():
        return {"cpus_per_task": launcher.get("cpus_per_task"), "launcher": "submitit"}
    return {}


def usable_threads(cfg: DictConfig) -> tuple[int, str]:
    """``thread_count`` on this machine: OMP_NUM_THREADS, CPU affinity, cgroup limit and the sweep's launcher."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return thread_count((cfg.get("speed") or {}).get("threads"), os.environ.get("OMP_NUM_THREADS"), affinity,
                        cgroup_cpu_limit(), **parallel_jobs())
