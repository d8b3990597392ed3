"""A sweep repeated over seeds, read per setting: what a sweep's single best job cannot say.

When ``seed`` is swept over two or more values (``-m scheduler.max_lr=auto,0.1,0.3 seed=0,1,2``), the jobs that
share every other swept value form one setting. Per setting: the monitored metric's mean, standard deviation and
standard error over its completed seeds, the same for its ``test/`` twin (choose on validation, report on test),
the LR it trained with (geometric mean and range: ``scheduler.max_lr=auto`` finds one per seed) and how its jobs
ended. Settings whose every job completed are ranked by the mean, best first; then the others. Each gets its gap to
the best setting with the standard error of that gap (paired by seed where both settings completed the same seeds:
same initial weights and data order; unpaired otherwise), and the verdict the project's own rule gives it: a gap
under two standard errors is "no measurable difference".

Read by callbacks/sweeps/summary.py, which writes ``settings.csv`` (this module's format, its only writer) and the
per-setting section of ``summary.md``, and plots the settings' means with their standard errors.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from typing import Any

REPEAT_KEY = "seed"
SETTINGS_FILE = "settings.csv"
#: a gap under this many standard errors of the difference is no measurable difference (README, benchmarks)
MEASURABLE = 2.0


def number(value: Any) -> float:
    """A metric's value as a float; NaN for anything that is not a number (a missing or empty cell)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def held_out_twin(monitor: str) -> str | None:
    """``test/acc`` for ``val/acc``: the held-out number to report for a setting chosen on validation."""
    return "test/" + monitor[4:] if monitor.startswith("val/") else None


@dataclass
class Stats:
    n: int
    mean: float
    sd: float   # NaN with fewer than two values
    se: float

    @classmethod
    def of(cls, values: list[float]) -> "Stats":
        values = [v for v in values if math.isfinite(v)]
        if not values:
            return cls(0, math.nan, math.nan, math.nan)
        sd = statistics.stdev(values) if len(values) > 1 else math.nan
        return cls(len(values), statistics.fmean(values), sd, sd / math.sqrt(len(values)))


@dataclass
class Setting:
    values: dict[str, str]          # the swept values other than the seed
    scores: dict[str, float]        # seed -> monitored metric, completed jobs only
    tests: dict[str, float]         # seed -> its test twin
    lrs: list[float]
    statuses: dict[str, int]        # status -> jobs
    rank: int | None = None         # None: not every job completed
    gap: float = math.nan           # best setting's mean minus this one's, in the metric's better direction
    gap_se: float = math.nan
    paired: bool = False
    verdict: str = ""

    @property
    def jobs(self) -> int:
        return sum(self.statuses.values())

    @property
    def score(self) -> Stats:
        return Stats.of(list(self.scores.values()))

    @property
    def test(self) -> Stats:
        return Stats.of(list(self.tests.values()))

    @property
    def complete(self) -> bool:
        return self.statuses.get("completed", 0) == self.jobs and bool(self.scores)

    def lr_text(self) -> str:
        """The LR it trained with: one number, or the geometric mean and range over seeds (``auto``)."""
        geo, low, high = _lr_range(self)
        if not math.isfinite(geo):
            return ""
        return f"{geo:.3g}" if low == high else f"{geo:.3g} ({low:.3g}-{high:.3g})"

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items()) or "all jobs"


def repeated(swept: list[str], rows: list[dict[str, Any]]) -> bool:
    """True when the seed is swept over two or more values."""
    return REPEAT_KEY in swept and len({r.get(REPEAT_KEY) for r in rows if r.get(REPEAT_KEY) != ""}) > 1


def _gap(best: Setting, other: Setting, sign: float) -> tuple[float, float, bool]:
    """Mean gap (positive: ``other`` is worse) and its standard error, paired by seed where the seeds agree."""
    common = sorted(set(best.scores) & set(other.scores))
    if len(common) > 1 and set(best.scores) == set(other.scores):
        diffs = Stats.of([sign * (best.scores[s] - other.scores[s]) for s in common])
        return diffs.mean, diffs.se, True
    b, o = best.score, other.score
    return sign * (b.mean - o.mean), math.sqrt(b.se ** 2 + o.se ** 2), False


def _verdict(setting: Setting) -> str:
    if not math.isfinite(setting.gap_se):
        return "one seed: no spread to judge by"
    if setting.gap_se == 0:  # paired seeds whose differences are all alike
        if math.isclose(setting.gap, 0.0, abs_tol=1e-9):
            return "identical on every seed"
        return f"measurably {'worse' if setting.gap > 0 else 'better'} (the same gap on every seed)"
    if setting.gap <= -MEASURABLE * setting.gap_se:  # only a setting outside the ranking can beat the best
        return f"measurably better ({-setting.gap / setting.gap_se:.1f} standard errors) on the seeds that completed"
    if setting.gap < MEASURABLE * setting.gap_se:
        return "no measurable difference"
    return f"measurably worse ({setting.gap / setting.gap_se:.1f} standard errors)"


def settings_of(rows: list[dict[str, Any]], swept: list[str], monitor: str, mode: str) -> list[Setting]:
    """The sweep's settings (rows grouped by every swept value but the seed), best first; see the module doc."""
    keys = [k for k in swept if k != REPEAT_KEY]
    twin = held_out_twin(monitor)
    groups: dict[tuple, Setting] = {}
    for row in rows:
        values = {k: str(row.get(k, "")) for k in keys}
        setting = groups.setdefault(tuple(values.values()), Setting(values, {}, {}, [], {}))
        setting.statuses[row["status"]] = setting.statuses.get(row["status"], 0) + 1
        score = number(row.get(monitor))
        if row["status"] == "completed" and math.isfinite(score):
            seed = str(row.get(REPEAT_KEY, ""))
            setting.scores[seed] = score
            setting.tests[seed] = number(row.get(twin)) if twin else math.nan
            if number(row.get("lr")) > 0:
                setting.lrs.append(float(row["lr"]))
    sign = 1.0 if mode == "max" else -1.0
    ranked = sorted((s for s in groups.values() if s.complete), key=lambda s: -sign * s.score.mean)
    others = [s for s in groups.values() if not s.complete]
    for rank, setting in enumerate(ranked, 1):
        setting.rank = rank
    for setting in (ranked[1:] + [s for s in others if s.scores]) if ranked else []:  # no gaps without a best
        setting.gap, setting.gap_se, setting.paired = _gap(ranked[0], setting, sign)
        setting.verdict = _verdict(setting)
    if ranked:
        ranked[0].gap, ranked[0].verdict = 0.0, "best"
    for setting in others:
        setting.verdict = ", ".join(f"{n} {s}" for s, n in sorted(setting.statuses.items()) if s != "completed") + \
            (f"; {setting.verdict}" if setting.verdict else "")
    return ranked + others


def _lr_range(setting: Setting) -> tuple[float, float, float]:
    if not setting.lrs:
        return math.nan, math.nan, math.nan
    geo = math.exp(statistics.fmean(math.log(v) for v in setting.lrs))
    return geo, min(setting.lrs), max(setting.lrs)


def columns(settings: list[Setting], monitor: str) -> list[str]:
    keys = list(settings[0].values) if settings else []
    twin = held_out_twin(monitor)
    stats = [f"{name} {part}" for name in (monitor, twin) if name for part in ("mean", "sd", "se")]
    return ["rank", *keys, "seeds", "jobs", *stats, "gap", "gap_se", "paired", "verdict", "lr_geomean", "lr_min",
            "lr_max"]


def records(settings: list[Setting], monitor: str) -> list[dict[str, Any]]:
    """One dict per setting, keyed by :func:`columns` (full precision)."""
    twin = held_out_twin(monitor)
    out = []
    for s in settings:
        lr = _lr_range(s)
        stats = {}
        for name, st in ((monitor, s.score), (twin, s.test)):
            if name:
                stats.update({f"{name} mean": st.mean, f"{name} sd": st.sd, f"{name} se": st.se})
        out.append({"rank": s.rank or "", **s.values, "seeds": " ".join(sorted(s.scores, key=_seed_order)),
                    "jobs": s.jobs, **stats, "gap": s.gap, "gap_se": s.gap_se, "paired": s.paired,
                    "verdict": s.verdict, "lr_geomean": lr[0], "lr_min": lr[1], "lr_max": lr[2]})
    return out


def _seed_order(seed: str) -> tuple:
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


def csv_text(settings: list[Setting], monitor: str) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns(settings, monitor), lineterminator="\n")
    writer.writeheader()
    for record in records(settings, monitor):
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()})
    return text.getvalue()


def _pm(stats: Stats, scale: float = 1.0) -> str:
    if stats.n == 0:
        return ""
    return f"{stats.mean * scale:.4g}" + (f" ± {stats.se * scale:.2g}" if math.isfinite(stats.se) else "")


def markdown(settings: list[Setting], monitor: str) -> str:
    """The per-setting section of summary.md."""
    twin = held_out_twin(monitor)
    seeds = max((s.jobs for s in settings), default=0)
    out = io.StringIO()
    out.write(f"## Per setting, over seeds (up to {seeds} a setting)\n\n")
    best = next((s for s in settings if s.rank == 1), None)
    if best is not None:
        out.write(f"Best setting: {best.label()}: {monitor} {_pm(best.score)} (mean ± standard error over "
                  f"{best.score.n} seeds)" + (f", {twin} {_pm(best.test)}" if twin else "") + ". A gap under "
                  f"{MEASURABLE:g} standard errors of the difference (paired by seed where the seeds match) is no "
                  "measurable difference." + (" With fewer than 3 seeds a standard error rests on too little to "
                                              "judge by: read the verdicts as hints and sweep seed=0,1,2 or more."
                                              if best.score.n < 3 else "") + "\n\n")
    keys = list(settings[0].values) if settings else []
    head = ["rank", *keys, "seeds", f"{monitor} (mean ± se)", "sd"] + ([f"{twin} (mean ± se)"] if twin else []) + \
        ["gap ± se", "verdict", "lr"]
    out.write("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n")
    for s in settings:
        gap = "" if not math.isfinite(s.gap) else f"{s.gap:.3g}" + (
            f" ± {s.gap_se:.2g}" if math.isfinite(s.gap_se) else "")
        cells = [s.rank or "", *s.values.values(), f"{s.score.n}/{s.jobs}", _pm(s.score),
                 "" if math.isnan(s.score.sd) else f"{s.score.sd:.2g}"] + ([_pm(s.test)] if twin else []) + \
            [gap, s.verdict, s.lr_text()]
        out.write("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |\n")
    out.write(f"\nEvery setting's numbers, at full precision, are in {SETTINGS_FILE}.\n\n")
    return out.getvalue()
