"""The method chapter's goals: each rule met and missed on a synthetic table, a missing table
"not measured", and the study summaries read from the committed benchmark tables."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from rmed_core.study import goals


def _study(median_err, worst_err, coverage=1.0, width=100.0, time_ratio=0.05, steps=("0", "750")):
    rows = [dict(step=s, time_ratio=time_ratio, product_ratio=time_ratio, sampled_s=60.0, exact_s=600.0,
                 exact_products=1000) for s in steps]
    rows.append(dict(step="both", median_err_all=median_err, worst_err_all=worst_err, median_err_sampled=median_err,
                     worst_err_sampled=worst_err, max_part_median=0.0, max_part_worst=worst_err,
                     median_part_median=median_err, median_part_worst=worst_err, coverage=coverage,
                     width_median=width))
    return pd.DataFrame(rows)


def _met(tables, name):
    return goals.goal_table(tables).set_index("goal").loc[name, "met"]


@pytest.mark.parametrize("median_err, worst_err, steps, met", [(0.03, 0.1, ("0", "750"), "yes"),
                                                               (0.06, 0.1, ("0", "750"), "no"),
                                                               (0.03, 0.3, ("0", "750"), "no"),
                                                               (0.03, 0.1, ("750",), "no")])
def test_study_error_goal(median_err, worst_err, steps, met):
    t = {"study_accuracy": _study(median_err, worst_err, steps=steps)}
    assert _met(t, "study model: sampled error vs exact, both checkpoints") == met


def test_interval_goal_needs_coverage_and_width():
    name = "study model: intervals cover and decide"
    assert _met({"study_accuracy": _study(0.01, 0.02, coverage=0.97, width=1.5)}, name) == "yes"
    assert _met({"study_accuracy": _study(0.01, 0.02, coverage=0.97, width=111.0)}, name) == "no"
    assert _met({"study_accuracy": _study(0.01, 0.02, coverage=0.90, width=1.5)}, name) == "no"


def test_a_missing_table_is_not_measured_never_met():
    table = goals.goal_table({})
    assert (table.met == "not measured").all() and len(table) == len(goals.GOALS)
    assert {g.table for g in goals.GOALS} <= set(goals.BENCHMARKS)


def test_summaries_of_missing_tables_say_so():
    acc, batch = goals.study_accuracy_summary(None), goals.study_batch_summary(None)
    assert acc["study_status"] == "not measured" and math.isnan(acc["study_median_err"])
    assert batch["batch_settled"] == "is not measured" and batch["batch_over25_2048"] == -1


def test_committed_tables_give_the_summaries_in_percent():
    tables = goals.read_tables()
    if "study_accuracy" not in tables:
        pytest.skip("benchmarks/results/study_accuracy.csv is not committed")
    raw = tables["study_accuracy"]
    both = raw[raw.step.astype(str) == "both"].iloc[0]
    acc = goals.study_accuracy_summary(raw)
    assert math.isclose(acc["study_median_err"], 100 * both.median_err_sampled)
    assert acc["study_exact_products"] == int(raw.exact_products.max())
    b = goals.study_batch_summary(tables.get("study_batch"))
    settled = b["batch_settled"].startswith("has settled")
    floor = float(tables["study_batch"].noise_floor_median.iloc[0])
    assert settled == (b["batch_move_2048"] <= floor)


def test_activation_summary_reads_each_proxy_and_says_when_not_measured():
    assert goals.probe_activation_summary(None)["activation_status"] == "not measured"
    df = pd.DataFrame({"proxy": ["gauss_newton", "activation", "gauss_newton+activation"], "tensors": [8, 8, 8],
                       "spearman_median": [0.3, 0.6, 0.9], "spearman_worst": [0.2, 0.5, 0.8],
                       "tau_median": [1.1, 0.8, 0.3], "tau_worst": [1.2, 0.9, 0.4], "top8_worst": [0.5, 0.9, 1.0],
                       "checkpoints_match": [True, True, True], "activation_s": [0.1] * 3})
    s = goals.probe_activation_summary(df)
    assert s["activation_status"] == "measured" and s["activation_checkpoints_match"] == "yes"
    assert s["activation_spearman_gn_act"] == 0.9 and s["activation_tau_gn"] == 1.1
    assert s["activation_top8_worst_act"] == 0.9 and s["activation_tensors"] == 8


def _probe_config(config, worst_err, mean_ratio_err, checkpoints=goals.PROBE_CHECKPOINTS):
    rows = [dict(config=config, checkpoint=c) for c in checkpoints]
    rows.append(dict(config=config, checkpoint="all", runs=12, median_err_sampled=0.02, worst_err=worst_err,
                     max_part_worst=worst_err, mean_log_ratio_err_worst=mean_ratio_err, log_ratio_err_median=0.01,
                     log_ratio_err_worst=0.1, products=1000, seconds=30.0, coverage=1.0, width_median=50.0))
    rows += [dict(config=config, checkpoint=f"{o} (both steps)", mean_log_err=0.0) for o in ("adam", "sgdm")]
    return rows


def test_probe_configs_say_which_configuration_meets_the_accuracy_goals_and_why_not():
    df = pd.DataFrame(_probe_config("defaults", 0.4, 0.01) + _probe_config("good", 0.05, 0.01)
                      + _probe_config("biased", 0.05, 0.2) + _probe_config("partial", 0.05, 0.01, ("adam@750",)))
    t = goals.probe_configs(df).set_index("config")
    assert t.loc["good", "accuracy_met"] == "yes"
    assert t.loc["defaults", "accuracy_met"] == "no (error goal missed)"
    assert t.loc["biased", "accuracy_met"] == "no (comparison goal missed)"
    assert t.loc["partial", "accuracy_met"].startswith("no (not measured: sgdm@750")
    # the goal table reads the defaults only
    assert _met({"probe_accuracy": df}, "study probe vs exact, Adam and SGD-M at 750 and 1,250") == "no"
    assert goals.probe_configs(None).empty
    assert goals.probe_configs_sentence(goals.probe_configs(None)) == "no configuration is measured yet"
    sentence = goals.probe_configs_sentence(t.reset_index())
    assert sentence.startswith("1 of the 4 configurations meet both accuracy goals") and "'good' (1000 products)" in sentence
