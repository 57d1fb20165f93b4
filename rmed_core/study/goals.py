"""The engine's benchmark goals, judged from the tables the benchmarks wrote: one registry of the
benchmark tables, one rule per goal with its threshold written once, and the study-size summaries
the method chapter ("Computing R_med") quotes.

Each benchmark in ``benchmarks/`` writes ``benchmarks/results/<name>.csv`` (and a ``.md`` with
its command, machine, threads and load). :func:`read_tables` reads those in :data:`BENCHMARKS`
that exist; :func:`goal_table` applies every rule of :data:`GOALS` to them: a goal whose table is
missing is ``not measured``, never met.

>>> import pandas as pd
>>> t = {"transformer_exact_vs_brute": pd.DataFrame({"method": ["exact"], "speedup_vs_brute": [5.0]})}
>>> goal_table(t).set_index("goal").loc["structured exact >= 4x faster than brute force", "met"]
'yes'
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..provenance import repo_root

__all__ = ["BENCHMARKS", "GOALS", "Goal", "results_dir", "read_tables", "goal_table", "study_accuracy_summary",
           "study_batch_summary", "probe_accuracy_summary", "probe_configs", "probe_configs_sentence",
           "probe_error_sentence", "probe_proxies_summary", "probe_activation_summary", "probe_description",
           "vocab10k_costs"]

#: The benchmark tables the method chapter reads: file stem under ``benchmarks/results`` -> what it
#: measures (and the script that writes it).
BENCHMARKS: dict[str, str] = {
    "transformer_exact_vs_brute": "exact vs brute force, TransformerLM (bench_transformer.py)",
    "transformer_probe_counts": "products on the whole TransformerLM (bench_transformer.py)",
    "transformer_heldout_exact_vs_brute": "exact vs brute force, a held-out TransformerLM size (bench_transformer.py)",
    "backpack": "exact vs BackPACK DiagGGNExact / DiagHessian (bench_backpack.py)",
    "eigen_vs_pyhessian": "top-5 eigenvalues vs PyHessian (bench_eigen.py)",
    "sampled_vs_exact": "sampled and Hutchinson R_med vs exact, small transformer (bench_sampled.py)",
    "study_accuracy": "study model: sampled vs exact, whole model (bench_study.py accuracy)",
    "study_batch": "study model: R_med against the Hessian batch (bench_study.py batch)",
    "study_vocab10k": "study model at the 10k vocabulary: sampled probe (bench_study.py vocab10k)",
    "study_iteration": "study model and its 10k vocabulary: seconds per training iteration (bench_study.py iteration)",
    "probe_speed": "study model: one sampled probe at 1 and 2 threads, beside a gradient (bench_probe.py speed)",
    "probe_accuracy": "study model: sampled vs exact on Adam and SGD-M checkpoints at 750 and 1,250 iterations "
                      "(bench_probe.py summary)",
    "probe_proxies": "study model: cheap proxies of the diagonal against exact, four checkpoints "
                     "(bench_probe.py proxies)",
    "probe_activation": "study model: the Gauss-Newton proxy with the activation's own curvature, the MLP's "
                        "first layer, four checkpoints (bench_probe.py activation)",
}


def results_dir() -> Path:
    """Where the benchmarks write their tables: ``<repository>/benchmarks/results``."""
    return repo_root() / "benchmarks" / "results"


def read_tables(root: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """The tables of :data:`BENCHMARKS` found under ``root`` (default :func:`results_dir`), by name."""
    root = Path(root) if root is not None else results_dir()
    return {name: pd.read_csv(root / f"{name}.csv") for name in BENCHMARKS if (root / f"{name}.csv").is_file()}


@dataclass(frozen=True)
class Goal:
    """A goal of the engine: its name, its target as the chapter states it, the benchmark table it
    is judged from, and its rule (the table -> ``(what was measured, whether the goal is met)``)."""

    name: str
    target: str
    table: str
    rule: Callable[[pd.DataFrame], tuple[str, bool]]


def _exact_vs_brute(df: pd.DataFrame) -> tuple[str, bool]:
    s = float(df.set_index("method").speedup_vs_brute["exact"])
    return f"{s:.2f}x", s >= 4


def _probe_counts(df: pd.DataFrame) -> tuple[str, bool]:
    r = df.set_index("d_model").ratio
    return ", ".join(f"d={d}: {v:.1f}x" for d, v in r.items()), bool(r.iloc[0] >= 4)


def _realised(df: pd.DataFrame) -> tuple[str, bool]:
    r = df.set_index("method").loc["exact"]
    return (f"{r.speedup_vs_brute:.2f}x faster, {r.realised_over_count_ratio:.2f} of the product-count ratio",
            bool(r.realised_over_count_ratio >= 1))


def _backpack(df: pd.DataFrame) -> tuple[str, bool]:
    ours = df[df.method == "ours (exact)"].set_index("model")
    parts = [f"{m}: {r.ratio_to_backpack:.2f}x" for m, r in ours.iterrows()]
    met = all(r.ratio_to_backpack <= (1.5 if m.startswith("relu") else 1.0) for m, r in ours.iterrows())
    return ", ".join(parts), met


def _eigen(df: pd.DataFrame) -> tuple[str, bool]:
    ours, peers = df.iloc[0], df.iloc[1:]
    ok = peers[peers.meets_1e3]
    ref = ok.iloc[0] if len(ok) else peers.sort_values("max_rel_error").iloc[0]
    note = "" if len(ok) else f" (PyHessian never reached 1e-3; its best: {ref.max_rel_error:.1e})"
    return (f"ours {ours.max_rel_error:.0e} in {ours.hvps} HVPs; {ref.hvp_ratio_vs_ours:.1f}x fewer HVPs, "
            f"{ref.time_ratio_vs_ours:.1f}x less time{note}",
            bool(ours.meets_1e3 and ref.hvp_ratio_vs_ours >= 5 and ref.time_ratio_vs_ours >= 3))


def _sampled_small(df: pd.DataFrame) -> tuple[str, bool]:
    row = df[df.method.str.startswith("sampled")].iloc[0]
    return (f"cost {row.cost_vs_exact:.0%} of exact, max error {row.max_rel_err:.1%}",
            bool(row.cost_vs_exact <= 0.05 and row.max_rel_err <= 0.02))


def _per_step(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.step.astype(str) != "both"]


def _both(df: pd.DataFrame) -> pd.Series:
    return df[df.step.astype(str) == "both"].iloc[0]


def _study_time(df: pd.DataFrame) -> tuple[str, bool]:
    r = _per_step(df)
    return (", ".join(f"step {s}: {t:.1%} of exact time ({x:.0f} s), {p:.0%} of its products"
                      for s, t, x, p in zip(r.step, r.time_ratio, r.sampled_s, r.product_ratio)),
            bool((r.time_ratio <= 0.10).all() and (r.product_ratio <= 0.10).all() and (r.sampled_s <= 120).all()))


def _study_error(df: pd.DataFrame) -> tuple[str, bool]:
    r = _both(df)
    steps = [str(s) for s in _per_step(df).step]
    missing = [s for s in ("0", "750") if s not in steps]
    which = f"checkpoints {', '.join(steps)}" + (f" (not measured: {', '.join(missing)})" if missing else "")
    return (f"{which}: median {r.median_err_all:.1%} (sampled tensors only: {r.median_err_sampled:.1%}), worst "
            f"{r.worst_err_all:.1%}; max part median {r.max_part_median:.1%} / worst {r.max_part_worst:.1%}, "
            f"median part {r.median_part_median:.1%} / {r.median_part_worst:.1%}",
            bool(not missing and r.median_err_all <= 0.05 and r.worst_err_all <= 0.20))


def _study_interval(df: pd.DataFrame) -> tuple[str, bool]:
    r = _both(df)
    return (f"coverage {r.coverage:.0%}, median width upper/lower {r.width_median:.1f}x",
            bool(r.coverage >= 0.95 and r.width_median <= 2))


def _vocab10k(df: pd.DataFrame) -> tuple[str, bool]:
    r = df.iloc[0]
    return f"{r.seconds:.0f} s ({r.products:.0f} products)", bool(r.seconds <= 300)


def _probe_speed(df: pd.DataFrame) -> tuple[str, bool]:
    r = df.set_index("threads")
    parts = [f"{t} thread{'s' if t > 1 else ''}: {x.seconds:.0f} s, {x.products:.0f} products "
             f"({1000 * x.s_per_product:.0f} ms each, {x.product_over_gradient:.1f} gradients)" for t, x in r.iterrows()]
    met = 2 in r.index and bool(r.seconds[2] <= 30 and r.products[2] <= 1000)
    return "; ".join(parts), met


#: the checkpoints the probe's accuracy is judged on: both optimizers at both steps
PROBE_CHECKPOINTS = ("adam@750", "sgdm@750", "adam@1250", "sgdm@1250")


def _probe_config(df: pd.DataFrame, config: str = "defaults") -> pd.DataFrame:
    """The rows of one estimate configuration (a table without the column is the defaults')."""
    return df[df.config == config] if "config" in df else df


def _probe_rows(df: pd.DataFrame, config: str = "defaults") -> tuple[pd.Series, list[str]]:
    df = _probe_config(df, config)
    seen = set(df.checkpoint)
    return df.set_index("checkpoint").loc["all"], [c for c in PROBE_CHECKPOINTS if c not in seen]


def _probe_error(df: pd.DataFrame, config: str = "defaults") -> tuple[str, bool]:
    r, missing = _probe_rows(df, config)
    gap = f" (not measured: {', '.join(missing)})" if missing else ""
    return (f"{r.runs:.0f} runs{gap}: median {r.median_err_sampled:.1%} (sampled tensors), worst {r.worst_err:.1%}; "
            f"max part worst {r.max_part_worst:.1%}",
            bool(not missing and r.runs >= 12 and r.median_err_sampled <= 0.03 and r.worst_err <= 0.10
                 and r.max_part_worst <= 0.10))


def _probe_comparison(df: pd.DataFrame, config: str = "defaults") -> tuple[str, bool]:
    r, missing = _probe_rows(df, config)
    t = _probe_config(df, config).set_index("checkpoint")
    bias = {o: float(t.mean_log_err[f"{o} (both steps)"]) for o in ("adam", "sgdm")
            if f"{o} (both steps)" in t.index}
    text = (f"mean log-error Adam {bias.get('adam', math.nan):+.3f}, SGD-M {bias.get('sgdm', math.nan):+.3f}; "
            f"per sampled tensor, log(SGD-M/Adam) error median {r.log_ratio_err_median:.3f}, worst {r.log_ratio_err_worst:.3f}; "
            f"its mean over tensors worst {r.mean_log_ratio_err_worst:.3f}")
    return text, bool(not missing and r.mean_log_ratio_err_worst <= 0.05)


def _probe_interval(df: pd.DataFrame) -> tuple[str, bool]:
    r, missing = _probe_rows(df)
    return (f"coverage {r.coverage:.0%}, median width upper/lower {r.width_median:.0f}x",
            bool(not missing and r.coverage >= 0.95 and r.width_median <= 3))


#: The goals, in the order the chapter lists them; each threshold is written in its rule only.
GOALS: tuple[Goal, ...] = (
    Goal("structured exact >= 4x faster than brute force", ">= 4x", "transformer_exact_vs_brute", _exact_vs_brute),
    Goal("products: brute / structured, whole model", ">= 4x", "transformer_probe_counts", _probe_counts),
    Goal("held-out transformer: realised speed-up >= product-count ratio", ">= 1.0",
         "transformer_heldout_exact_vs_brute", _realised),
    Goal("within 1.5x of BackPACK DiagGGNExact, <= DiagHessian", "<= 1.5x / <= 1x", "backpack", _backpack),
    Goal("top-5 eigenvalues to 1e-3 vs PyHessian", ">= 5x fewer HVPs, >= 3x less time", "eigen_vs_pyhessian", _eigen),
    Goal("sampled R_med at <= 5% of exact cost within 2% (small transformer)", "<= 5%, <= 2%", "sampled_vs_exact",
         _sampled_small),
    Goal("study model: sampled probe <= 10% of exact time (and of its products), <= 2 min", "<= 10%, <= 120 s",
         "study_accuracy", _study_time),
    Goal("study model: sampled error vs exact, both checkpoints", "median <= 5%, worst <= 20%", "study_accuracy",
         _study_error),
    Goal("study model: intervals cover and decide", "coverage >= 95%, width <= 2x", "study_accuracy", _study_interval),
    Goal("10k vocabulary: sampled probe of the whole model", "<= 5 min", "study_vocab10k", _vocab10k),
    Goal("study model: one probe in <= 30 s at 2 threads", "<= 30 s, <= 1,000 products", "probe_speed",
         _probe_speed),
    Goal("10k vocabulary: sampled probe in <= 90 s", "<= 90 s", "study_vocab10k",
         lambda df: (_vocab10k(df)[0], bool(df.iloc[0].seconds <= 90))),
    Goal("study probe vs exact, Adam and SGD-M at 750 and 1,250", "median <= 3%, worst <= 10%, max part <= 10%",
         "probe_accuracy", _probe_error),
    Goal("the SGD-M/Adam comparison the verdict reads", "mean log-ratio error <= 0.05",
         "probe_accuracy", _probe_comparison),
    Goal("probe intervals on both optimizers", "coverage >= 95%, width <= 3x", "probe_accuracy", _probe_interval),
)


def probe_configs(df: pd.DataFrame | None) -> pd.DataFrame:
    """Each estimate configuration of ``probe_accuracy`` judged by the probe's two accuracy goals
    (the rules of :data:`GOALS`: R_med's and its maximum part's errors on all four checkpoints,
    and the error of the verdict's statistic), beside its cost: columns ``config, runs, median_err,
    worst_err, max_part_worst, mean_log_ratio_err_worst, products, seconds, accuracy_met``
    (``yes``, or ``no`` with the reason: a goal missed or a checkpoint not measured). The
    estimate's defaults may change only to a configuration whose row says ``yes``."""
    cols = ["config", "runs", "median_err", "worst_err", "max_part_worst", "mean_log_ratio_err_worst", "products",
            "seconds", "accuracy_met"]
    if df is None:
        return pd.DataFrame(columns=cols)
    rows = []
    for config in dict.fromkeys(df.config if "config" in df else ["defaults"]):
        r, missing = _probe_rows(df, config)
        (_, error_ok), (_, ratio_ok) = _probe_error(df, config), _probe_comparison(df, config)
        why = ([f"not measured: {', '.join(missing)}"] if missing else []) + \
              ([] if error_ok else ["error goal missed"]) + ([] if ratio_ok else ["comparison goal missed"])
        rows.append(dict(config=config, runs=r.runs, median_err=r.median_err_sampled, worst_err=r.worst_err,
                         max_part_worst=r.max_part_worst, mean_log_ratio_err_worst=r.mean_log_ratio_err_worst,
                         products=r.products, seconds=r.seconds,
                         accuracy_met="yes" if not why else "no (" + "; ".join(why) + ")"))
    return pd.DataFrame(rows, columns=cols)


def probe_configs_sentence(configs: pd.DataFrame) -> str:
    """What the method chapter says of :func:`probe_configs`: which configurations meet both
    accuracy goals on all four checkpoints (the cheapest first), or that none does, and what the
    fewest products bought."""
    if configs.empty:
        return "no configuration is measured yet"
    ok = configs[configs.accuracy_met == "yes"].sort_values("products")
    cheapest = configs.sort_values("products").iloc[0]
    tail = (f"the cheapest measured, '{cheapest.config}' ({cheapest.products:.0f} products), has a worst error of "
            f"{cheapest.worst_err:.1%} and a maximum part's worst of {cheapest.max_part_worst:.1%}")
    if ok.empty:
        return f"none of the {len(configs)} configurations meets both accuracy goals on all four checkpoints; " + tail
    names = ", ".join(f"'{c}' ({p:.0f} products)" for c, p in zip(ok.config, ok.products))
    return f"{len(ok)} of the {len(configs)} configurations meet both accuracy goals on all four checkpoints: {names}; " + tail


def goal_table(tables: Mapping[str, pd.DataFrame], goals: tuple[Goal, ...] = GOALS) -> pd.DataFrame:
    """Every goal judged from ``tables`` (:func:`read_tables`): columns ``goal, target, measured,
    met`` with ``met`` ``yes``, ``no`` or ``not measured`` (its table is missing)."""
    rows = []
    for g in goals:
        if g.table not in tables:
            rows.append(dict(goal=g.name, target=g.target, measured="not measured", met="not measured"))
            continue
        measured, met = g.rule(tables[g.table])
        rows.append(dict(goal=g.name, target=g.target, measured=measured, met="yes" if met else "no"))
    return pd.DataFrame(rows, columns=["goal", "target", "measured", "met"])


def study_accuracy_summary(df: pd.DataFrame | None) -> dict[str, Any]:
    """What the chapter quotes of ``study_accuracy`` (sampled against exact on the study model):
    errors and coverage in percent, the interval's median width, the cost of each method and the
    product ratio of brute force to exact. ``None`` (not measured) gives NaN, ``-1`` for counts and
    ``"not measured"`` for phrases, so that a page built without the table says so."""
    if df is None:
        out: dict[str, Any] = {k: math.nan for k in (
            "study_median_err", "study_worst_err", "study_max_part_worst", "study_median_part_worst", "study_coverage",
            "study_width", "study_time_ratio", "study_product_ratio", "study_exact_minutes", "study_sampled_seconds",
            "study_brute_ratio")}
        return {**out, "study_exact_products": -1, "study_brute_products": -1, "study_status": "not measured",
                "study_which_part": "not measured"}
    both, per_step = _both(df), _per_step(df)
    return {
        "study_median_err": 100 * float(both.median_err_sampled),
        "study_worst_err": 100 * float(both.worst_err_sampled),
        "study_max_part_worst": 100 * float(both.max_part_worst),
        "study_median_part_worst": 100 * float(both.median_part_worst),
        "study_coverage": 100 * float(both.coverage),
        "study_width": float(both.width_median),
        "study_time_ratio": 100 * float(per_step.time_ratio.astype(float).max()),
        "study_product_ratio": 100 * float(per_step.product_ratio.astype(float).max()),
        "study_exact_minutes": float(per_step.exact_s.astype(float).max()) / 60,
        "study_sampled_seconds": float(per_step.sampled_s.astype(float).max()),
        "study_exact_products": int(per_step.exact_products.astype(float).max()),
        "study_brute_products": int(per_step.brute_products.max()) if "brute_products" in per_step else -1,
        "study_brute_ratio": float(per_step.brute_over_exact_products.astype(float).max())
        if "brute_over_exact_products" in per_step else math.nan,
        "study_status": "measured",
        "study_which_part": "the maximum is the larger error: the proxy's candidates missed the largest entry of some "
                            "tensors" if both.max_part_worst > both.median_part_worst else
                            "the maximum is found by the proxy's candidates, and the error left is the median's "
                            "sampling error",
    }


def study_batch_summary(df: pd.DataFrame | None) -> dict[str, Any]:
    """What the chapter quotes of ``study_batch`` (R_med at 256 to 2,048 Hessian tokens against
    512): per size the median and largest ``|log|`` move, the tensor of the largest and how many
    move by more than 25%; and whether R_med has *settled* at 512 tokens -- the median move to
    2,048 tokens within the estimate's own error there (``noise_floor_median``)."""
    sizes = (256, 1024, 2048)
    b = df.set_index("tokens") if df is not None else None
    out: dict[str, Any] = {}
    for k in sizes:
        row = b.loc[k] if b is not None and k in b.index else None
        out[f"batch_move_{k}"] = float(row.median_abs_log_vs_512) if row is not None else math.nan
        out[f"batch_max_{k}"] = float(row.max_abs_log_vs_512) if row is not None else math.nan
        out[f"batch_over25_{k}"] = int(row.over_25pct) if row is not None else -1
        out[f"batch_maxtensor_{k}"] = str(row.tensor_of_max) if row is not None else "not measured"
    if b is None:
        return {**out, "batch_defined": -1, "batch_settled": "is not measured", "batch_seconds_2048": math.nan,
                "batch_seconds_512": math.nan}
    floor = float(b.noise_floor_median.iloc[0]) if "noise_floor_median" in b else math.nan
    if math.isnan(floor):
        settled = ("is not compared with a noise floor (the accuracy section has not measured this checkpoint)")
    elif 2048 in b.index and b.median_abs_log_vs_512[2048] <= floor:
        settled = "has settled at 512 tokens: the median move to 2,048 is within the estimate's own error"
    else:
        settled = ("has not settled at 512 tokens: the median tensor moves by more than the estimate's own error "
                   f"(median |log| over sampled tensors, {floor:.3f}), so the study's values are R_med of its "
                   "512-token batch, not of the training loss at large")
    return {**out, "batch_defined": int(b.defined.min()), "batch_settled": settled,
            "batch_seconds_2048": float(b.seconds.get(2048, math.nan)),
            "batch_seconds_512": float(b.seconds.get(512, math.nan))}


def probe_accuracy_summary(df: pd.DataFrame | None) -> dict[str, Any]:
    """What the chapters quote of ``probe_accuracy`` (the sampled probe against exact on Adam and
    SGD-M checkpoints): errors in percent over all four checkpoints, per optimizer the mean
    log-error (a bias), the error of the verdict's statistic (the mean over tensors of
    ``log(R_sgdm / R_adam)``, worst over estimate seeds), coverage and width; ``probe_status`` is
    ``"not measured"`` (and the numbers NaN) without the table or while a checkpoint is missing."""
    keys = ("probe_median_err", "probe_worst_err", "probe_max_part_worst", "probe_median_part_worst",
            "probe_bias_adam", "probe_bias_sgdm", "probe_ratio_err_median", "probe_ratio_err_worst",
            "probe_mean_ratio_err_worst", "probe_coverage", "probe_width", "probe_runs", "probe_gn_max_part_worst",
            "probe_gn_runs", "probe_gn_worst_err", "probe_gn_median_err", "probe_gn_mean_ratio_err_worst")
    out: dict[str, Any] = dict.fromkeys(keys, math.nan)
    if df is None:
        return {**out, "probe_status": "not measured"}
    r, missing = _probe_rows(df)
    t = _probe_config(df).set_index("checkpoint")
    if "config" in df and "gauss-newton" in set(df.config):
        g, _ = _probe_rows(df, "gauss-newton")
        out.update(probe_gn_max_part_worst=100 * float(g.max_part_worst), probe_gn_runs=float(g.runs),
                   probe_gn_worst_err=100 * float(g.worst_err), probe_gn_median_err=100 * float(g.median_err_sampled),
                   probe_gn_mean_ratio_err_worst=float(g.mean_log_ratio_err_worst))
    out.update(probe_median_err=100 * float(r.median_err_sampled), probe_worst_err=100 * float(r.worst_err),
               probe_max_part_worst=100 * float(r.max_part_worst),
               probe_median_part_worst=100 * float(r.median_part_worst),
               probe_bias_adam=float(t.mean_log_err.get("adam (both steps)", math.nan)),
               probe_bias_sgdm=float(t.mean_log_err.get("sgdm (both steps)", math.nan)),
               probe_ratio_err_median=float(r.log_ratio_err_median), probe_ratio_err_worst=float(r.log_ratio_err_worst),
               probe_mean_ratio_err_worst=float(r.mean_log_ratio_err_worst), probe_coverage=100 * float(r.coverage),
               probe_width=float(r.width_median), probe_runs=float(r.runs))
    status = "measured" if not missing else f"measured without {', '.join(missing)}"
    return {**out, "probe_status": status}


def probe_error_sentence(summary: Mapping[str, Any], effect_log: float | None = None) -> str:
    """One sentence for a study chapter: the probe's measured error on both optimizers' checkpoints
    (from :func:`probe_accuracy_summary`), or that it is not measured; ``effect_log``, the log of
    the geometric-mean ratio the chapter's verdict reads, is set beside the error of that log."""
    if summary["probe_status"] == "not measured":
        return "its error against the exact diagonal on both optimizers' checkpoints is not measured yet"
    return (f"against the exact diagonal on Adam's and SGD-M's checkpoints after 750 and 1,250 iterations "
            f"({summary['probe_status']}; {summary['probe_runs']:.0f} estimate runs) its median error on the tensors it "
            f"samples is "
            f"{summary['probe_median_err']:.1f}% and its worst {summary['probe_worst_err']:.1f}%, its mean log-error "
            f"{summary['probe_bias_adam']:+.3f} on Adam and {summary['probe_bias_sgdm']:+.3f} on SGD-M, and the "
            f"log of the geometric-mean SGD-M/Adam ratio it gives is off by at most "
            f"{summary['probe_mean_ratio_err_worst']:.3f}"
            + (f" (the effect this chapter reads: {effect_log:.3f})" if effect_log is not None else ""))


def probe_proxies_summary(df: pd.DataFrame | None, target: float = 0.03) -> dict[str, Any]:
    """What the method chapter quotes of ``probe_proxies_tensors`` (each proxy against the exact
    diagonal, per tensor of the four checkpoints): per proxy the median residual sd ``tau`` of
    ``log|h|`` on the log proxy, and the exact entries per tensor a regression estimator of the
    median would need for a standard error of ``target`` at that ``tau``,
    ``m = (1.25 tau / target)^2`` (the standard error of a median of ``m`` normal residuals is
    about ``sqrt(pi/2) tau / sqrt(m)``), for the median tensor and for the 90th percentile."""
    out: dict[str, Any] = {"proxies_status": "not measured"}
    for k in ("p", "q", "gauss_newton"):
        out.update({f"proxies_tau_{k}": math.nan, f"proxies_m_{k}": math.nan, f"proxies_m90_{k}": math.nan,
                    f"proxies_rho_{k}": math.nan})
    if df is None:
        return out
    for k, g in df.groupby("proxy"):
        tau, tau90 = float(g.tau.median()), float(g.tau.quantile(0.9))
        out.update({f"proxies_tau_{k}": tau, f"proxies_rho_{k}": float(g.spearman.median()),
                    f"proxies_m_{k}": math.ceil((1.25 * tau / target) ** 2),
                    f"proxies_m90_{k}": math.ceil((1.25 * tau90 / target) ** 2)})
    out["proxies_status"] = "measured"
    out["proxies_best"] = min(("p", "q", "gauss_newton"), key=lambda k: out[f"proxies_tau_{k}"]
                              if out[f"proxies_tau_{k}"] == out[f"proxies_tau_{k}"] else math.inf)
    return out


def probe_activation_summary(df: pd.DataFrame | None) -> dict[str, Any]:
    """What the method chapter quotes of ``probe_activation`` (one row per proxy: the Gauss-Newton
    diagonal, the activation's own term, their sum): the median and worst Spearman correlation with
    ``|h|``, the median ``tau`` and the worst top-8 share of the maximum, per proxy, as
    ``activation_<stat>_<proxy>`` (proxy ``gn``, ``act``, ``gn_act``), and whether the checkpoints were
    those of the accuracy tables."""
    short = {"gauss_newton": "gn", "activation": "act", "gauss_newton+activation": "gn_act"}
    out: dict[str, Any] = {"activation_status": "not measured", "activation_tensors": math.nan,
                           "activation_checkpoints_match": "not measured"}
    for k in short.values():
        out.update({f"activation_{st}_{k}": math.nan for st in ("spearman", "spearman_worst", "tau", "top8_worst")})
    if df is None:
        return out
    for _, r in df.iterrows():
        k = short.get(str(r.proxy))
        if k is None:
            continue
        out.update({f"activation_spearman_{k}": float(r.spearman_median), f"activation_spearman_worst_{k}":
                    float(r.spearman_worst), f"activation_tau_{k}": float(r.tau_median),
                    f"activation_top8_worst_{k}": float(r.top8_worst)})
    out["activation_tensors"] = int(df.tensors.max())
    out["activation_checkpoints_match"] = "yes" if bool(df.checkpoints_match.all()) else "no"
    out["activation_status"] = "measured"
    return out


def probe_description(rmed: pd.DataFrame, provenance: list[dict], effect_log: float | None = None) -> str:
    """What a study chapter says of its probes: the method that made the R_med table ``rmed`` (its
    ``method`` column), the code versions of the runs (their ``provenance`` records) and the
    sampled probe's measured error on both optimizers' checkpoints (:func:`probe_error_sentence`,
    from this repository's ``probe_accuracy`` table)."""
    methods = sorted(set(rmed.method)) if "method" in rmed else []
    what = " and ".join("the sampled estimate (`rmed_per_layer(method='sampled')` at its defaults)" if m == "sampled"
                        else f"the {m} diagonal" for m in methods) or "a method the runs did not record"
    versions = ", ".join(sorted({str(p.get("code_version")) for p in provenance})) or "not recorded"
    text = f"R_med here is {what} (code versions of the runs read: {versions})"
    if "sampled" in methods:
        text += "; " + probe_error_sentence(probe_accuracy_summary(read_tables().get("probe_accuracy")), effect_log)
    return text


def vocab10k_costs(tables: Mapping[str, pd.DataFrame]) -> dict[str, float]:
    """What the 10k-vocabulary scale costs, for the chapters that say why it is not in the bundle:
    seconds per training iteration (Adam; ``study_iteration``) and per sampled probe of the whole
    model (``study_vocab10k``), NaN where not measured."""
    it = tables.get("study_iteration")
    probe = tables.get("study_vocab10k")
    sel = it[(it.scale == "study-10k") & (it.opt == "adam")] if it is not None else None
    return {"vocab10k_iteration_s": float(sel.s_per_iteration.iloc[0]) if sel is not None and len(sel) else math.nan,
            "vocab10k_probe_s": float(probe.seconds.iloc[0]) if probe is not None and len(probe) else math.nan}
