"""A mistyped command line, said in one line. Hydra composes the config before train.py's code runs, so a key the
config does not have (``scheduler.maxlr=0.1``), an option a group does not have (``scheduler=onecycle``) or an
override it cannot parse stops it with its own report and exit 1. After such a failure (only then: composing costs
time), :func:`explain` composes the same overrides again with Hydra's compose API and says what was wrong, what is
allowed and the nearest spelling; train.py prints it and exits 2, as for its other start-up errors."""
from __future__ import annotations

import difflib
import re
import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_OPTION = re.compile(r"Could not find '([^']+)/([^'/]+)'")
_OPTIONS = re.compile(r"Available options in '[^']+':\n((?:\t.*\n?)+)")


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a plain nested dict that holds a value (not a dict)."""
    keys = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        keys += leaf_keys(value, f"{name}.") if isinstance(value, dict) else [name]
    return keys


def _compose(config_dir: str, overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def _missing_key(config_dir: str, overrides: list[str], key: str) -> str:
    """``key=...`` names a key the config lacks: the keys beside it and the nearest ones, from the config composed
    without that override."""
    given = next((o for o in overrides if o.split("=", 1)[0] == key), f"{key}=...")
    try:
        cfg = _compose(config_dir, [o for o in overrides if o.split("=", 1)[0] != key])
    except Exception:  # another override is wrong too: Hydra's own report stands
        return f"{key}: the config has no such key; to add one, use +{given}"
    plain = OmegaConf.to_container(cfg, resolve=False)
    parent, _, _ = key.rpartition(".")
    beside = OmegaConf.select(cfg, parent) if parent else cfg
    siblings = [str(k) for k in beside] if isinstance(beside, DictConfig) else []
    close = [f"{parent}.{k}" if parent else k
             for k in difflib.get_close_matches(key.rpartition(".")[2], siblings, n=3, cutoff=0.6)]
    close = close or difflib.get_close_matches(key, leaf_keys(plain), n=3, cutoff=0.85)  # a misspelt group
    text = f"{key}: the config has no such key."
    if close:
        text += f" Did you mean {' or '.join(close)}?"
    if parent and siblings:
        text += f" {parent} has: {', '.join(k for k in siblings if not k.startswith('_'))}."
    return text + f" To add a new key, use +{given}"


def explain(config_dir: str, overrides: list[str]) -> str | None:
    """One line saying why Hydra could not compose ``overrides`` (a command line's, without flags), or None when
    they compose (the failure was elsewhere; Hydra's report stands)."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    try:
        _compose(config_dir, overrides)
    except MissingConfigException as err:
        found, options = _OPTION.search(str(err)), _OPTIONS.search(str(err))
        if not found:
            return str(err).splitlines()[0]
        group, option = found.groups()
        allowed = [line.strip() for line in options.group(1).splitlines() if line.strip()] if options else []
        close = difflib.get_close_matches(option, allowed, n=1, cutoff=0.6)
        return (f"{group}={option}: no such option; {group} takes: {', '.join(allowed) or '(none found)'}"
                + (f". Did you mean {group}={close[0]}?" if close else ""))
    except OverrideParseException as err:
        return f"cannot read the command line: {str(err).splitlines()[0]} (Hydra's override grammar: key=value)"
    except ConfigCompositionException as err:
        found = _OVERRIDE.search(str(err))
        return _missing_key(config_dir, overrides, found.group(1)) if found else str(err).splitlines()[0]
    except Exception:  # anything else: Hydra's own report stands
        return None
    return None


SWEEP_FLAGS = ("-m", "--multirun")


def one_job_each(overrides: list[str]) -> list[list[str]]:
    """A sweep's overrides as single jobs' override lists, enough to meet every swept value once: each value of each
    swept key, with the other swept keys at their first value (a typo in any value composes in one of them)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [[f"{o.get_key_element()}={v}" for v in o.sweep_iterator()] if o.is_discrete_sweep() else [o.input_line]
              for o in parsed]
    firsts = [v[0] for v in values if v]
    jobs = [firsts]
    for i, options in enumerate(values):
        jobs += [firsts[:i] + [option] + firsts[i + 1:] for option in options[1:]]
    return jobs


def main_with_plain_errors(main, config_dir: str, arguments: list[str]) -> None:
    """Run a Hydra app's ``main()``; where Hydra stopped it with exit 1 because the command line's ``arguments`` do
    not compose (a sweep's ``-m``: one of its jobs' would not; other flags: Hydra's report stands), print one
    ``Error:`` line saying why and exit 2. Ctrl-C that reaches it (a sweep's parent: a job handles its own) exits
    130 with the resume command."""
    try:
        main()
    except KeyboardInterrupt:  # a sweep's parent whose launcher (joblib) runs the jobs in workers: it stopped them
        from callbacks.run.hydra_job import sweep_interrupted

        print(f"Interrupted. {sweep_interrupted(arguments)}", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit as stop:
        flags = [a for a in arguments if a.startswith("-")]
        overrides = [a for a in arguments if not a.startswith("-")]
        why = None
        if stop.code == 1 and not flags:
            why = explain(config_dir, overrides)
        elif stop.code == 1 and set(flags) <= set(SWEEP_FLAGS):
            try:
                jobs = one_job_each(overrides)
            except Exception:  # an unparsable sweep: said as for a single run
                jobs = [overrides]
            why = next((w for w in (explain(config_dir, job) for job in jobs) if w), None)
        if why:
            print(f"Error: {why}", file=sys.stderr)
            raise SystemExit(2) from None
        raise
