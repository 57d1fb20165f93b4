"""Which design choices the premise and the claim survive: the variants table.

The study's design point (N(0, 0.02) weights, no output bias, a constant rate) is one choice
among several a reader could make, and nobody knows which the paper made. Each design variant
changes one of them (the :class:`rmed_core.runs.config.TrainConfig` fields :data:`DESIGN_FIELDS`),
is tuned on the study's grid (``sweeps/variant-*-tuning.yaml``) and run with at least five seeds
at the rates its tuning picks (``sweeps/variant-*.yaml``). This module reads each variant, and the
design point itself, by the same two rules, fixed before any variant's runs were read:

* **The premise** -- "Adam trains faster" -- by :func:`rmed_core.study.premise.premise_verdict`:
  the final-loss claim (:func:`~rmed_core.study.premise.final_loss_claim`) and the claim on the
  iterations to the lowest loss every run reaches (:func:`~rmed_core.study.premise.matched_loss_table`,
  a running mean over 2% of the run), both *reproduced* for *reproduced*.
* **The claim** -- SGD-M's R_med above Adam's over all tensors -- by the run-level rule
  (:func:`rmed_core.study.run_test.run_claim`: the unpaired permutation test of the per-run mean
  log R_med), at each published iteration, beside the rule's simulated false-positive rate and its
  power at a ratio of 1.3 with the variant's runs and its measured between-run spread
  (:func:`rmed_core.study.run_test.simulate_run_test`).

The ``reading`` column says which of the four cases a variant is: the claim *with* the premise,
the claim *without* it, the premise without the claim, or neither; at iteration 1250, the
later of the two.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

import pandas as pd

from ..runs.config import TrainConfig
from .premise import final_loss_claim, matched_loss_table, premise_verdict
from .run_test import check_table, claim_with_error_rates, run_means
from .verdict import ALPHA

__all__ = ["DESIGN_FIELDS", "DESIGN_POINT", "design_variant", "variant_table", "variant_reading"]

#: The run options a design variant changes, one at a time.
DESIGN_FIELDS = ("init", "output_bias", "schedule")
#: Their values at the study's design point (the :class:`TrainConfig` defaults).
DESIGN_POINT = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in DESIGN_FIELDS}


def design_variant(config: Mapping | str) -> str:
    """The name of a run's design variant from its configuration (a dict, or the JSON of a
    bundle's ``config`` column): ``"design point"``, or the fields that differ from
    :data:`DESIGN_POINT` as ``field=value``, joined by ``", "``. A field absent from the
    configuration is at its default (the run key omits it there).

    >>> design_variant({"opt": "adam"}), design_variant('{"init": "torch"}')
    ('design point', 'init=torch')
    >>> design_variant({"output_bias": True, "schedule": "warmup-cosine"})
    'output_bias=True, schedule=warmup-cosine'
    """
    if isinstance(config, str):
        config = json.loads(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a mapping or its JSON, got {type(config).__name__}")
    changed = [f"{k}={config[k]}" for k in DESIGN_FIELDS if k in config and config[k] != DESIGN_POINT[k]]
    return ", ".join(changed) or "design point"


def variant_reading(premise: str, claim: str) -> str:
    """Which case a variant is, from its premise and claim verdicts.

    >>> variant_reading("reproduced", "reproduced"), variant_reading("not shown", "reproduced")
    ('claim with premise', 'claim without premise')
    >>> variant_reading("reproduced", "not shown"), variant_reading("not shown", "opposite")
    ('premise without claim', 'neither')
    >>> variant_reading("reproduced", "not testable: 2 SGD-M and 2 Adam runs")
    'not testable'
    """
    if premise.startswith("not testable") or claim.startswith("not testable"):
        return "not testable"
    p, c = premise == "reproduced", claim == "reproduced"
    return {(True, True): "claim with premise", (False, True): "claim without premise",
            (True, False): "premise without claim", (False, False): "neither"}[(p, c)]


def variant_table(runs: pd.DataFrame, loss: pd.DataFrame, rmed: pd.DataFrame, steps: Mapping[int, int], *,
                  alpha: float = ALPHA, n_sims: int = 2000) -> pd.DataFrame:
    """The premise and the claim of every design variant among ``runs`` (module docstring).

    Args:
        runs, loss, rmed: a bundle's tables (:func:`rmed_core.runs.bundle.read_bundle`) holding the
            variants' study runs, one task; tuning runs (a ``sweep`` ending in ``-tuning``) are
            left out. Tables of several bundles may be concatenated.
        steps: ``{published iteration: probe step}`` (:func:`rmed_core.study.published.published_steps`).

    Returns:
        One row per variant: ``variant``, ``n_sgdm``, ``n_adam`` (runs), ``premise`` (verdict),
        ``final_loss_ratio`` (SGD-M / Adam, geometric mean over seeds) with ``final_lower``,
        ``final_upper``; per published iteration ``it``: ``claim_it``, ``ratio_it``, ``lower_it``,
        ``upper_it``, ``p_it``, ``fpr_it``, ``power_1_3_it``; and ``reading`` (:func:`variant_reading`
        of the premise and the claim at the last iteration). A variant with tuning runs only is a
        row whose premise and reading are ``not run``; one with runs of a single optimizer so far
        is ``not testable``.
    """
    check_table("runs", runs, ["run", "task", "sweep", "config", "steps"])
    check_table("loss", loss, ["run", "task", "opt", "lr", "seed", "step", "loss"])
    check_table("rmed", rmed, ["run", "opt", "seed", "step", "layer", "r_med"])
    if not steps:
        raise ValueError("steps: expected at least one {published iteration: probe step}")
    study = runs[~runs.sweep.astype(str).str.endswith("-tuning")]
    if study.empty:
        raise ValueError("runs: no study run (every run belongs to a tuning sweep)")
    if study.task.nunique() > 1:
        raise ValueError(f"runs: {study.task.nunique()} tasks; read one task at a time")
    names = study.config.map(design_variant)
    tuned_only = sorted(set(runs.config.map(design_variant)) - set(names))
    last = max(steps)
    rows = []
    for variant in sorted(set(names), key=lambda v: (v != "design point", v)):
        ids = set(study.run[names == variant])
        v_loss, v_rmed = loss[loss.run.isin(ids)], rmed[rmed.run.isin(ids)]
        opts = v_loss.groupby("run").opt.first()
        row: dict = {"variant": variant, "n_sgdm": int((opts == "sgdm").sum()), "n_adam": int((opts == "adam").sum())}
        if row["n_sgdm"] and row["n_adam"]:
            window = max(1, int(study.steps[names == variant].max()) // 50)
            final = final_loss_claim(v_loss)
            lowest = matched_loss_table(v_loss, window=window)
            lowest = lowest[lowest.fraction == 0].iloc[0]
            row |= {"premise": premise_verdict(final.verdict, lowest.verdict), "final_loss_ratio": final.ratio,
                    "final_lower": final.lower, "final_upper": final.upper}
        else:
            row |= {"premise": f"not testable: {row['n_sgdm']} SGD-M and {row['n_adam']} Adam runs",
                    "final_loss_ratio": math.nan, "final_lower": math.nan, "final_upper": math.nan}
        for it, step in steps.items():  # the variant's own runs set the rule's error rates
            c = claim_with_error_rates(run_means(v_rmed[v_rmed.step == step]), alpha=alpha, n_sims=n_sims)
            row |= {f"claim_{it}": c["verdict"], **{f"{k}_{it}": c[k] for k in ("ratio", "lower", "upper", "p",
                                                                                 "fpr", "power_1_3")}}
        row["reading"] = variant_reading(row["premise"], row[f"claim_{last}"])
        rows.append(row)
    for variant in tuned_only:  # tuned, its study not run yet: listed, not read
        rows.append({"variant": variant, "n_sgdm": 0, "n_adam": 0, "premise": "not run", "reading": "not run"})
    return pd.DataFrame(rows)
