"""train.py with scheduler.max_lr=auto end to end: the LR found flows into the schedule, the records and the
config; what cannot work stops before the search; a search without evidence trains nothing."""
import re

import pytest
import torch
from omegaconf import OmegaConf

from callbacks.range_test.finder import RangeTestResult
from callbacks.run.result_file import read_result
from conftest import compose_config, run_train_forked, smoke_overrides
from run_records import logged_hparams, scalars
from train import run


def one_cycle_lrs_from_torch(max_lr, total, shape):
    """Independent oracle: what torch's OneCycleLR sets at optimizer steps 0..total-1."""
    import warnings

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total, **shape)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            sched.step()
    return lrs


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """An auto run as a user runs it (train.py's command line, forked: conftest.run_train_forked): the range test,
    then one-cycle at the LR it found."""
    out = tmp_path_factory.mktemp("auto")
    result = run_train_forked(smoke_overrides("scheduler.max_lr=auto", "range_test.num_steps=30",
                                              f"hydra.run.dir={out}", "print_config=true"), cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, RangeTestResult.from_json(out / "lr_range_test.json").lr


def test_auto_run_trains_at_the_found_lr_and_every_record_says_so(auto_run):
    out, result, found = auto_run
    assert 1e-5 < found < 10 and found != 10.0
    # the logged LR is torch's OneCycleLR at the found peak, on every step Lightning logs on (log_every_n_steps=4)
    logged = sorted(scalars(out)["train/lr"])
    shape = dict(pct_start=0.45, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0, three_phase=True,
                 base_momentum=0.85, max_momentum=0.95)
    total = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert [s for s, _ in logged] == [s for s in range(total) if (s + 1) % 4 == 0]
    torch_lrs = one_cycle_lrs_from_torch(found, total, shape)
    assert [v for _, v in logged] == pytest.approx([torch_lrs[s] for s, _ in logged], rel=1e-5)
    # TensorBoard HParams, the resolved config beside .hydra/, the checkpoint and the printed config hold it too
    hparams = logged_hparams(out)
    assert hparams["scheduler/max_lr"] == pytest.approx(found, rel=1e-6)
    assert hparams["scheduler/max_lr_source"].startswith("range_test")
    assert OmegaConf.load(out / "config.yaml").scheduler.max_lr == found
    first_line = (out / "config.yaml").read_text().splitlines()[0]  # a comment: the file still loads as the config
    assert first_line == f"# lr_source: {read_result(out)['lr']['source']}" and "trials" in first_line
    assert OmegaConf.load(out / ".hydra" / "config.yaml").scheduler.max_lr == "auto"  # what was asked
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["run_config"]["scheduler"]["max_lr"] == found
    assert ckpt["callbacks"]["LRSchedule"]["params"]["max_lr"] == found
    assert f"max_lr: {found}" in result.stdout and "max_lr: auto" not in result.stdout


def test_auto_run_prints_its_header_before_the_range_test_and_then_the_lr_found(auto_run):
    out, result, found = auto_run
    lines = (out / "train.log").read_text().splitlines()  # the console's log lines, in order

    def first(words):
        return next(i for i, line in enumerate(lines) if words in line)

    # the header says how max_lr will be found; the range test's own warning (30 steps on 8 batches) comes after it
    header = first("peak LR auto (max_lr found by the LR range test: 30 steps, then max_lr trials at 0.3x")
    assert header < first("the sweep needs 30") < first("lr found    max_lr") < first("completed in")
    assert f"lr found    max_lr = {found:.4g} in " in lines[first("lr found    max_lr")]
    assert lines[first("lr found    max_lr")].endswith(read_result(out)["lr"]["source"])  # the lr_source of result.json
    assert not re.search(r"\d+/\d+ +eta ", result.stdout)  # trainer.enable_progress_bar=false: no range-test progress
    # the closing summary weighs the search against the training it tuned, from what result.json records
    record = read_result(out)
    share = record["lr"]["search_steps"] / record["steps"]
    cost = lines[first("lr search   ")]
    # ... and so does the forecast before the search starts: an upper bound of what it did, for the same training
    plan = re.search(r"LR search: at most \d+ sweep steps .* = (\d+) optimizer steps .*the training's (\d+)",
                     lines[first("LR search: at most")])
    assert header < first("LR search: at most") < first("the sweep needs 30") and plan, lines[header + 1]
    assert int(plan.group(1)) >= record["lr"]["search_steps"] and int(plan.group(2)) == record["steps"]
    assert first("completed in") < first("lr search   ")
    assert f"{record['lr']['search_steps']} optimizer steps: {share:.2g}x the training's {record['steps']}" in cost
    assert ("a sweep of a few fixed max_lr" in cost) == (share > 1), cost


def test_auto_run_equals_a_run_given_the_found_lr(auto_run, tmp_path):
    """The range test phase leaves nothing behind: training at the found LR by hand gives the same weights."""
    out, _, found = auto_run
    from train import run_from_overrides  # in-process: only its weights are compared

    run_from_overrides(smoke_overrides(f"scheduler.max_lr={found}"), tmp_path)
    a = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_auto_in_any_case_is_auto_and_other_words_say_what_takes_it(tmp_path):
    """scheduler.max_lr=Auto stopped with "must be a number > 0, got 'Auto'"; optimizer.lr=auto with torch's
    "'<' not supported between instances of 'str' and 'float'". Both now read plainly, before any data is read."""
    from train import auto_keys

    cfg = compose_config(smoke_overrides("scheduler.max_lr=Auto"), output_dir=tmp_path)
    assert auto_keys(cfg) == ["max_lr"] and cfg.scheduler.max_lr == "auto"
    cfg = compose_config(smoke_overrides("scheduler.max_lr=autp"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler.max_lr must be a number or auto \(the LR range test finds it\), "
                                         r"got 'autp'"):
        run(cfg)
    for overrides in (["optimizer.lr=auto", "scheduler=none"], ["optimizer.lr=AUTO"]):
        cfg = compose_config(smoke_overrides(*overrides, "data.num_train=0"), output_dir=tmp_path)
        with pytest.raises(ValueError, match=r"optimizer.lr takes a number; auto goes in scheduler.max_lr .*"
                                             r"task=lr_range_test first"):
            run(cfg)


def test_auto_base_lr_needs_the_accuracy_test(tmp_path):
    cfg = compose_config(smoke_overrides("scheduler=cyclic", "scheduler.base_lr=auto", "scheduler.max_lr=0.4",
                                         "range_test.num_steps=20", "scheduler.step_size_up=1"), output_dir=tmp_path)
    with pytest.raises(ValueError, match="scheduler.base_lr=auto needs range_test=accuracy"):
        run(cfg)


def test_a_schedule_that_cannot_fit_the_run_fails_before_the_sweep(tmp_path, monkeypatch):
    """A warm-up as long as the run, with max_lr=auto: the schedule's own error (on the trials' length, the run's
    compressed) before the range test sweeps; it came after the sweep, at the first trial."""
    from callbacks.range_test.loss import LRRangeTest

    swept = []
    monkeypatch.setattr(LRRangeTest, "_one_sweep", lambda *args: swept.append(1))
    cfg = compose_config(smoke_overrides("scheduler=warmup", "scheduler.max_lr=auto", "scheduler.warmup_length=2",
                                         "range_test.num_steps=20"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler.warmup_length must be shorter than training: got 2 epoch\(s\), "
                                         r"the run is 2 epoch\(s\) \(16 optimizer steps\)"):
        run(cfg)
    assert swept == [] and not (tmp_path / "checkpoints").exists()


def test_a_run_too_short_for_its_own_schedule_fails_before_the_search(tmp_path, monkeypatch):
    """One-cycle on a 2-step run (one batch an epoch, 2 epochs) with max_lr=auto: the schedule's error comes before
    the range test sweeps; it came after the whole search (350 optimizer steps, minutes on a CPU), at fit start."""
    from callbacks.range_test.loss import LRRangeTest

    swept = []
    monkeypatch.setattr(LRRangeTest, "_one_sweep", lambda *args: swept.append(1))
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto", "trainer.max_epochs=2",
                                         "trainer.limit_train_batches=1"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"the run has only 2 optimizer steps: one-cycle with scheduler.pct_start"):
        run(cfg)
    assert swept == [] and not (tmp_path / "checkpoints").exists()


def test_auto_refuses_to_train_where_the_search_found_no_evidence(tmp_path, monkeypatch):
    """A search whose minimum sat at the sweep's last LR with no trial learned (issue 20: a ResNet-9 trained there,
    at chance): a plain error naming what to set, result.json says failed with the search's cost, nothing trains."""
    import train
    from callbacks.range_test.result import RangeTestResult

    searched = RangeTestResult(kind="loss", lrs=[0.01, 0.1, 1.0, 10.0], losses=[1.1] * 4, smoothed=[1.1] * 4,
                               suggestions={"loss_min": 10.0, "trials": 3.0}, rule="trials", lr=3.0,
                               settings={"suggestion": "loss_min"}, search_steps=150, elapsed_s=2.0,
                               trials=[{"lr": 3.0, "score": 1.1, "learned": False, "chance_loss": 1.0986,
                                       "steps": 50, "planned_steps": 50}])
    monkeypatch.setattr(train, "run_range_test", lambda cfg, model, datamodule: searched)
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no evidence for any max_lr .*Give scheduler.max_lr a number"):
        run(cfg)
    record = read_result(tmp_path)
    assert record["status"] == "failed" and "range_test.num_steps" in record["reason"]
    assert record["lr"]["max_lr"] is None and record["lr"]["search_steps"] == 150
    assert not (tmp_path / "checkpoints").exists()


def test_bad_schedule_shape_fails_before_the_range_test(tmp_path):
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto", "scheduler.pct_start=0.9"), output_dir=tmp_path)
    with pytest.raises(ValueError, match="scheduler.pct_start"):
        run(cfg)
    assert not (tmp_path / "lr_range_test.json").exists()



def test_both_ends_of_a_cyclic_schedule_found_by_the_accuracy_test_are_in_result_json(tmp_path):
    """scheduler.base_lr=auto: config.yaml and the checkpoint had the found base_lr, result.json's lr only max_lr."""
    from omegaconf import OmegaConf

    from callbacks.run.result_file import read_result
    from conftest import CPU_OVERRIDES, run_in_process

    run_in_process(["experiment=smoke", *CPU_OVERRIDES, "scheduler=cyclic", "scheduler.max_lr=auto",
                    "scheduler.base_lr=auto", "range_test=accuracy", "trainer.max_epochs=1", "test=false"], tmp_path)
    used = OmegaConf.load(tmp_path / "config.yaml").scheduler
    lr = read_result(tmp_path)["lr"]
    assert 0 < lr["base_lr"] == used.base_lr < lr["max_lr"] == used.max_lr
