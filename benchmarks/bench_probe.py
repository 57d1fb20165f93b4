"""The sampled probe of the study model against exact on both optimizers' checkpoints.

The verdict compares SGD-M with Adam tensor by tensor, so the estimate's error is measured on
the checkpoints of both: Adam (lr 1e-3) and SGD-M (lr 0.1, momentum 0.9) after 750 and 1,250
iterations of seed 0 of the study's recipe (:func:`bench_study.checkpoint`), on the probes'
Hessian batch (16 sequences = 512 tokens of the training text).

Sections:

* ``exact`` -- the exact diagonal of every tensor of one checkpoint, one tensor at a time, each
  cached in ``benchmarks/.cache/exact/<checkpoint>/`` as it finishes (an interrupted run resumes
  at the next tensor; weights-only files read with ``weights_only=True``); the per-tensor
  summary (max|h|, median|h|, R_med, products, seconds) goes to
  ``results/probe_exact_<opt>_<steps>.csv``, small enough to commit.
* ``accuracy`` -- the sampled probe (``rmed_per_layer(method="sampled")`` with its defaults) of
  one checkpoint for estimate seeds ``--seeds``, each run's table cached in
  ``benchmarks/.cache/probe/`` (resumable), with its products, seconds and the load.
* ``speed`` -- the sampled probe of one checkpoint ``--reps`` times at each of ``--thread-counts``,
  beside the time of one gradient of the same loss (so that seconds read as ratios on a noisy
  machine): ``results/probe_speed.{csv,md}``.
* ``proxies`` -- how well each cheap ranking predicts the exact diagonal, per tensor of every
  checkpoint: the row-sum proxy ``p`` (``K`` products a layer), the per-position squared gradient
  ``q`` (free) and the sampled Gauss-Newton diagonal (``--draws`` label draws, one batched
  first-order backward pass for all tensors): Spearman correlation with ``|h|``, the residual
  standard deviation ``tau`` of ``log|h|`` on ``log proxy`` (what a regression estimator of the
  median would be left with), and where the proxy's top 8 entries put the maximum:
  ``results/probe_proxies.{csv,md}``.
* ``activation`` -- the Gauss-Newton proxy with and without the activation's own curvature
  term, on the sampled tensors of the layers that feed an activation (the exact diagonals of
  only those): ``results/probe_activation.{csv,md}``.
* ``summary`` -- the runs of ``accuracy`` against the exact tables of every checkpoint:
  ``results/probe_accuracy.{csv,md}`` (per checkpoint and over all four: errors of R_med and of
  its two parts, coverage, width, cost; per optimizer the mean log-error; per step the error of
  the per-tensor SGD-M/Adam log-ratio and of its mean over tensors, the verdict's statistic) and
  ``results/probe_accuracy_tensors.csv``.

    .venv/bin/python benchmarks/bench_probe.py exact --opt sgdm --steps 750
    .venv/bin/python benchmarks/bench_probe.py accuracy --opt sgdm --steps 750 --seeds 0 1 2
    .venv/bin/python benchmarks/bench_probe.py accuracy --opt sgdm --steps 750 --seeds 0 --config gauss-newton
    .venv/bin/python benchmarks/bench_probe.py speed --opt adam --steps 750 --reps 3 --thread-counts 1 2
    .venv/bin/python benchmarks/bench_probe.py proxies --draws 32
    .venv/bin/python benchmarks/bench_probe.py activation --draws 32
    .venv/bin/python benchmarks/bench_probe.py summary
"""
from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load, machine, save  # noqa: E402
from bench_study import CACHE, RESULTS, checkpoint  # noqa: E402

from rmed_core.runs.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from rmed_core.hessian import hessian_diagonal, rmed_per_layer  # noqa: E402
from rmed_core.hessian.table import embedding_rows  # noqa: E402
from rmed_core.models import lm_loss  # noqa: E402
from rmed_core.stats import median, ratio, undefined_reason  # noqa: E402

CHECKPOINTS = [("adam", 750), ("sgdm", 750), ("adam", 1250), ("sgdm", 1250)]


def exact_dir(opt: str, steps: int) -> Path:
    return CACHE / "exact" / f"study-{opt}-s0-{steps}"


def exact_diagonals(opt: str, steps: int, threads: int, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Every tensor's exact diagonal of one checkpoint (or only ``names``), computed where not
    cached; the summary table is written only for every tensor."""
    m, data, spec = checkpoint("study", steps, 0, opt)
    batch = data.hessian_batch(0, spec.hessian_batch)
    folder = exact_dir(opt, steps)
    folder.mkdir(parents=True, exist_ok=True)
    out, rows = {}, []
    for name, p in m.named_parameters():
        if names is not None and name not in names:
            continue
        f = folder / f"{name}.pt"
        if f.exists():
            rec = torch.load(f, weights_only=True)
        else:
            info: dict = {}
            t = time.perf_counter()
            h = hessian_diagonal(m, lm_loss, batch, params=[name], info=info)[name]
            rec = dict(h=h, seconds=torch.tensor(time.perf_counter() - t),
                       products=torch.tensor(int(info.get("n_hvp", 0))))
            buf = io.BytesIO()
            torch.save(rec, buf)
            atomic_write_bytes(f, buf.getvalue())
            print(f"{opt}@{steps} {name}: {float(rec['seconds']):.1f} s, {int(rec['products'])} products, "
                  f"load {load()}", flush=True)
        out[name] = rec["h"]
        rows.append(dict(name=name, seconds=float(rec["seconds"]), products=int(rec["products"])))
    if names is not None:
        return out
    emb = embedding_rows(m, batch, dict(m.named_parameters()), lm_loss)
    summary = []
    for r in rows:
        h = out[r["name"]].abs().flatten().double()
        if r["name"] in emb:  # an embedding: the rows of the tokens in the batch
            h = out[r["name"]].abs().double()[emb[r["name"]]].flatten()
        hmax, hmed = float(h.max()), float(median(h))
        summary.append(dict(opt=opt, steps=steps, layer=r["name"], n_used=len(h), h_max=hmax, h_median=hmed,
                            r_med=ratio(hmax, hmed), products=r["products"], seconds=round(r["seconds"], 2),
                            threads=threads))
    RESULTS.mkdir(exist_ok=True)
    pd.DataFrame(summary).to_csv(RESULTS / f"probe_exact_{opt}_{steps}.csv", index=False)
    return out


def run_dir() -> Path:
    return CACHE / "probe"


#: the estimate configurations measured: keyword arguments of rmed_per_layer(method="sampled")
CONFIGS: dict[str, dict] = {"defaults": {}, "gauss-newton": {"gauss_newton_draws": 32, "activation_curvature": False},
                            "gauss-newton+activation": {"gauss_newton_draws": 32},
                            # fewer products: no row-sum proxy (the Gauss-Newton ranking with the
                            # activation term stratifies), a third of the draws, half the candidates
                            "lean": {"gauss_newton_draws": 32, "proxy_below": 0, "n_samples": 64, "n_candidates": 8}}


def accuracy(opt: str, steps: int, seeds: list[int], threads: int, config: str = "defaults") -> None:
    """The sampled probe of one checkpoint for each estimate seed, each run's table cached."""
    m, data, spec = checkpoint("study", steps, 0, opt)
    batch = data.hessian_batch(0, spec.hessian_batch)
    run_dir().mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        tag = "" if config == "defaults" else f"-{config}"
        f = run_dir() / f"study-{opt}-s0-{steps}-seed{seed}{tag}.csv"
        if f.exists():
            continue
        at_start = load()
        t = time.perf_counter()
        df = rmed_per_layer(m, lm_loss, batch, method="sampled", seed=seed, **CONFIGS[config])
        seconds = time.perf_counter() - t
        df = df.assign(config=config, opt=opt, steps=steps, seed=seed, sampled=~df.layer.isin(df.attrs["exact"]),
                       products=df.attrs["products"], seconds=round(seconds, 2), threads=threads,
                       load_start=at_start, load_end=load())
        atomic_write_text(f, df.to_csv(index=False))
        print(f"{config} {opt}@{steps} seed {seed}: {seconds:.0f} s, {df.attrs['products']} products, load {load()}",
              flush=True)


def gradient_seconds(m, batch, reps: int = 5) -> float:
    """The median time of one gradient of the probe's loss on the probe's batch."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        loss = lm_loss(m(batch[0]), batch[1])
        torch.autograd.grad(loss, list(m.parameters()))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def speed(opt: str, steps: int, reps: int, thread_counts: list[int]) -> None:
    """The sampled probe of one checkpoint, ``reps`` times at each thread count, in one process."""
    m, data, spec = checkpoint("study", steps, 0, opt)
    batch = data.hessian_batch(0, spec.hessian_batch)
    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        for rep in range(reps):
            at_start = load()
            grad_s = gradient_seconds(m, batch)
            t = time.perf_counter()
            df = rmed_per_layer(m, lm_loss, batch, method="sampled", seed=rep)
            seconds = time.perf_counter() - t
            rows.append(dict(threads=threads, rep=rep, seconds=seconds, products=df.attrs["products"],
                             s_per_product=seconds / df.attrs["products"], gradient_s=grad_s,
                             products_per_gradient=seconds / df.attrs["products"] / grad_s,
                             load_start=at_start, load_end=load()))
            print(rows[-1], flush=True)
    runs = pd.DataFrame(rows)
    out = runs.groupby("threads").agg(reps=("rep", "size"), seconds=("seconds", "median"),
                                      products=("products", "median"), s_per_product=("s_per_product", "median"),
                                      gradient_s=("gradient_s", "median"),
                                      product_over_gradient=("products_per_gradient", "median"),
                                      load_start=("load_start", "first"), load_end=("load_end", "last")).reset_index()
    out.insert(0, "checkpoint", f"{opt}@{steps}")
    save("probe_speed", out.round(4),
         "The study model's sampled probe (rmed_per_layer(method='sampled'), defaults, estimate seeds 0.."
         f"{reps - 1}) of the {opt} checkpoint after {steps} iterations (seed 0), 512 Hessian tokens, float32, "
         "CPU; medians of the repetitions at each thread count, in one process. gradient_s: one gradient of the "
         "same loss on the same batch; product_over_gradient: seconds per product over seconds per gradient "
         "(a ratio that travels between machines better than seconds do). Load averages (1/5/15 min) at the "
         "first and last repetition.",
         f"python benchmarks/bench_probe.py speed --opt {opt} --steps {steps} --reps {reps} --thread-counts "
         + " ".join(map(str, thread_counts)))


def proxies(draws: int) -> None:
    """Each proxy of every tensor against the exact diagonal, on every checkpoint (module doc)."""
    from scipy.stats import spearmanr

    from rmed_core.hessian.exact import StructuredHessian
    from rmed_core.hessian.sampled import _fisher_proxy, _proxy

    rows = []
    for opt, steps in CHECKPOINTS:
        m, data, spec = checkpoint("study", steps, 0, opt)
        batch = data.hessian_batch(0, spec.hessian_batch)
        params = dict(m.named_parameters())
        exact = exact_diagonals(opt, steps, torch.get_num_threads())
        emb = embedding_rows(m, batch, params, lm_loss)
        sh = StructuredHessian(m, lm_loss, batch, params, gauss_newton=False)
        t = time.perf_counter()
        ggn = sh.sampled_gauss_newton(sh.sites, batch[1], draws)
        ggn_s = time.perf_counter() - t
        grad_s = gradient_seconds(m, batch)
        for k, site in enumerate(sh.sites):
            R = sh.unit_responses(site) if site.g is not None and site.K <= 1024 else None
            for attr in ("weight", "bias"):
                name = getattr(site, attr)
                if not name or site.g is None:
                    continue
                cand = {"gauss_newton": ggn[(k, attr)], "q": _fisher_proxy(site, attr)}
                if R is not None:
                    cand["p"] = _proxy(site, attr, R)
                h = exact[name].abs().double()
                rows_of = emb.get(name)
                def pick(v: torch.Tensor, shape=h.shape, rows_of=rows_of) -> torch.Tensor:
                    return v.reshape(shape)[rows_of].flatten() if rows_of is not None else v.flatten()

                hv = pick(h)
                for kind, v in cand.items():
                    v = pick(v.abs().double().reshape(h.shape))
                    ok = (v > 0) & (hv > 0)
                    lx, ly = v[ok].log().numpy(), hv[ok].log().numpy()
                    slope, icpt = np.polyfit(lx, ly, 1) if len(lx) > 2 else (math.nan, math.nan)
                    top = torch.topk(v, min(8, len(v))).indices
                    rows.append(dict(checkpoint=f"{opt}@{steps}", layer=name, n=len(hv), proxy=kind,
                                     spearman=spearmanr(v.numpy(), hv.numpy()).statistic,
                                     tau=float(np.std(ly - (slope * lx + icpt))) if len(lx) > 2 else math.nan,
                                     log_sd=float(hv[hv > 0].log().std()),
                                     top8_max_over_max=float(hv[top].max() / hv.max()),
                                     proxy_s=ggn_s if kind == "gauss_newton" else math.nan,
                                     gradient_s=grad_s))
        print(f"{opt}@{steps}: {len(rows)} rows", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / "probe_proxies_tensors.csv", index=False)
    out = df.groupby("proxy").agg(tensors=("layer", "size"), spearman_median=("spearman", "median"),
                                  tau_median=("tau", "median"), tau_worst=("tau", "max"),
                                  tensors_tau_below_0_15=("tau", lambda x: int((x < 0.15).sum())),
                                  top8_worst=("top8_max_over_max", "min"),
                                  seconds=("proxy_s", "median"), gradient_s=("gradient_s", "median")).reset_index()
    save("probe_proxies", out.round(4),
         f"Proxies of the exact diagonal on every tensor of the four checkpoints (Adam and SGD-M after 750 and "
         f"1,250 iterations, study seed 0; 512 Hessian tokens; an embedding's looked-up rows): p = row sums "
         f"(K products a layer), q = per-position squared gradients (free), gauss_newton = the sampled "
         f"Gauss-Newton diagonal from {draws} label draws (StructuredHessian.sampled_gauss_newton; 'seconds' is "
         f"its time for all tensors together, gradient_s one gradient of the loss). tau: residual sd of log|h| "
         f"regressed on log proxy (a regression estimator of the median from m exact entries has a standard "
         f"error of about 1.25 tau / sqrt(m)); top8_worst: the smallest max|h| among a proxy's top 8 entries, "
         f"over the tensor's max|h|. Per tensor: probe_proxies_tensors.csv.",
         f"python benchmarks/bench_probe.py proxies --draws {draws}")


def activation(draws: int) -> None:
    """The Gauss-Newton proxy with and without the activation's own curvature term
    (:mod:`rmed_core.hessian._activation`), on the sampled tensors of the layers that feed an
    activation, on every checkpoint: ``results/probe_activation.{csv,md}``. The exact diagonals
    of only those tensors are computed (and cached); their R_med is checked against
    ``probe_exact_<opt>_<steps>.csv``, so that the checkpoints are those of the accuracy tables."""
    from scipy.stats import spearmanr

    from rmed_core.hessian._activation import activation_terms
    from rmed_core.hessian.exact import StructuredHessian
    from rmed_core.hessian.sampled import _weighted

    rows = []
    for opt, steps in CHECKPOINTS:
        m, data, spec = checkpoint("study", steps, 0, opt)
        batch = data.hessian_batch(0, spec.hessian_batch)
        params = dict(m.named_parameters())
        sh = StructuredHessian(m, lm_loss, batch, params, gauss_newton=False)
        sh.site_grads()
        sites = [s for s in sh.sites if s.g is not None and s.weight not in sh.tied]
        t = time.perf_counter()
        terms = activation_terms(m, lm_loss, batch, {s.module_name: s.module for s in sites})
        act_s = time.perf_counter() - t
        for s in sites:
            sh.site_cost(s)  # decides each site's structure (positions_independent)
        fed = [s for s in sites if s.module_name in terms and not s.positions_independent]  # the sampled ones
        names = [getattr(s, a) for s in fed for a in ("weight", "bias") if getattr(s, a)]
        exact = exact_diagonals(opt, steps, torch.get_num_threads(), names)
        known = pd.read_csv(RESULTS / f"probe_exact_{opt}_{steps}.csv").set_index("layer").r_med
        ggn = sh.sampled_gauss_newton(fed, batch[1], draws)
        R = sh.output[..., 0].numel()
        for k, s in enumerate(fed):
            W = s.canon(terms[s.module_name][None].to(s.A.dtype))[0]
            for attr in ("weight", "bias"):
                name = getattr(s, attr)
                if not name:
                    continue
                h = exact[name].double().flatten()
                hmax, hmed = float(h.abs().max()), float(median(h.abs()))
                check = abs(ratio(hmax, hmed) / known[name] - 1)
                g = ggn[(k, attr)].double() * R
                r = _weighted(s, attr, W).double()
                for kind, v in (("gauss_newton", g), ("activation", r), ("gauss_newton+activation", g + r)):
                    a = v.abs()
                    ok = (a > 0) & (h.abs() > 0)
                    lx, ly = a[ok].log().numpy(), h.abs()[ok].log().numpy()
                    slope, icpt = np.polyfit(lx, ly, 1)
                    top = torch.topk(a, min(8, len(a))).indices
                    rows.append(dict(checkpoint=f"{opt}@{steps}", layer=name, n=len(h), proxy=kind,
                                     spearman=spearmanr(a.numpy(), h.abs().numpy()).statistic,
                                     tau=float(np.std(ly - (slope * lx + icpt))),
                                     top8_max_over_max=float(h.abs()[top].max() / hmax),
                                     signed_corr=float(np.corrcoef(v.numpy(), h.numpy())[0, 1]),
                                     rmed_vs_exact_table=check, activation_s=act_s))
        print(f"{opt}@{steps}: {len(rows)} rows, load {load()}", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / "probe_activation_tensors.csv", index=False)
    out = df.groupby("proxy").agg(tensors=("layer", "size"), spearman_median=("spearman", "median"),
                                  spearman_worst=("spearman", "min"), tau_median=("tau", "median"),
                                  tau_worst=("tau", "max"), top8_worst=("top8_max_over_max", "min"),
                                  checkpoints_match=("rmed_vs_exact_table", lambda x: bool((x < 1e-3).all())),
                                  activation_s=("activation_s", "median")).reset_index()
    save("probe_activation", out.round(4),
         f"The Gauss-Newton proxy (R x StructuredHessian.sampled_gauss_newton, {draws} label draws, R label rows) "
         f"with and without the activation's own curvature term sum_nt dL/dy sigma''(z) a^2 "
         f"(rmed_core.hessian._activation.activation_terms, exact, one backward pass: activation_s), against the "
         f"exact diagonal of the sampled tensors of the layers that feed an activation (the first MLP layer of "
         f"block 0: weight and bias), on the four checkpoints (Adam and SGD-M after 750 and 1,250 iterations, study "
         f"seed 0; 512 Hessian tokens). spearman: rank correlation of |proxy| with |h|; tau: residual sd of "
         f"log|h| on log|proxy|; top8_worst: the smallest max|h| among the proxy's top 8 entries over max|h|; "
         f"checkpoints_match: the exact R_med of each tensor is within 1e-3 of probe_exact_<opt>_<steps>.csv's (the same "
         f"checkpoints as the accuracy tables; float32 on another CPU differs by about 1e-5, another checkpoint "
         f"by far more). Per tensor: probe_activation_tensors.csv.",
         f"python benchmarks/bench_probe.py activation --draws {draws}")


def _log_err(est: pd.Series, exact: pd.Series) -> pd.Series:
    return np.log(est.astype(float)) - np.log(exact.astype(float))


def summary() -> None:
    """Every cached run of ``accuracy`` against the exact table of its checkpoint (module doc)."""
    runs = [pd.read_csv(f).assign(config=lambda d: d.get("config", "defaults"))
            for f in sorted(run_dir().glob("study-*-seed*.csv"))]
    exact = [pd.read_csv(RESULTS / f"probe_exact_{o}_{k}.csv") for o, k in CHECKPOINTS
             if (RESULTS / f"probe_exact_{o}_{k}.csv").exists()]
    if not runs or not exact:
        raise SystemExit("no runs or no exact tables yet: run the exact and accuracy sections first")
    ex = pd.concat(exact).rename(columns={"r_med": "exact_r_med", "h_max": "exact_h_max",
                                          "h_median": "exact_h_median", "products": "exact_products",
                                          "seconds": "exact_seconds"})
    t = pd.concat(runs).merge(ex[["opt", "steps", "layer", "exact_r_med", "exact_h_max", "exact_h_median",
                                  "exact_products", "exact_seconds"]], on=["opt", "steps", "layer"])
    # the undefined rule on both sides: a diagonal that is zero in theory (an attention key's bias,
    # whose curvature the softmax's shift invariance removes) is rounding noise in both, and its
    # ratio is no entry of any error; a tensor undefined on one side only is a mismatch
    scale = t.groupby(["opt", "steps"]).exact_h_max.transform("max")
    t["exact_undefined"] = [undefined_reason(a, b, c, torch.float32) != ""
                            for a, b, c in zip(t.exact_h_max, t.exact_h_median, scale)]
    t["undefined"] = t.undefined.fillna("").astype(str)
    t["mismatch"] = (t.undefined != "") != t.exact_undefined
    defined = (t.undefined == "") & ~t.exact_undefined
    t.loc[~defined, ["r_med", "exact_r_med", "h_max", "exact_h_max", "h_median", "exact_h_median"]] = np.nan
    t["err"] = (t.r_med / t.exact_r_med - 1).abs()
    t["log_err"] = _log_err(t.r_med, t.exact_r_med)
    t["max_err"] = (t.h_max / t.exact_h_max - 1).abs()
    t["median_err"] = (t.h_median / t.exact_h_median - 1).abs()
    t["covered"] = ((t.lower <= t.exact_r_med * (1 + 1e-6)) & (t.exact_r_med <= t.upper * (1 + 1e-6))).where(defined)
    t["width"] = t.upper / t.lower
    t.to_csv(RESULTS / "probe_accuracy_tensors.csv", index=False)

    def block(g: pd.DataFrame) -> dict:
        s = g[g.sampled]
        runs_ = g.drop_duplicates(["opt", "steps", "seed"])
        return dict(runs=len(runs_), tensors=g.layer.nunique(), sampled_tensors=s.layer.nunique(),
                    undefined_tensors=g[g.exact_undefined].layer.nunique(), undefined_mismatches=int(g.mismatch.sum()),
                    median_err=g.err.median(), worst_err=g.err.max(), median_err_sampled=s.err.median(),
                    max_part_worst=s.max_err.max(), median_part_median=s.median_err.median(),
                    median_part_worst=s.median_err.max(), mean_log_err=g.log_err.mean(),
                    coverage=s.covered.dropna().astype(float).mean(), width_median=s.width[s.covered.notna()].median(),
                    products=runs_.products.median(), seconds=runs_.seconds.median(),
                    s_per_product=(runs_.seconds / runs_.products).median(),
                    # the exact diagonal of one checkpoint (median over the checkpoints of the row)
                    exact_products=g.drop_duplicates(["opt", "steps", "layer"]).groupby(["opt", "steps"])
                    .exact_products.sum().median(),
                    exact_seconds=g.drop_duplicates(["opt", "steps", "layer"]).groupby(["opt", "steps"])
                    .exact_seconds.sum().median())

    frames = []
    for config in [c for c in CONFIGS if c in set(t.config)]:
        tc = t[t.config == config]
        rows = [dict(checkpoint=f"{o}@{k}", **block(g)) for (o, k), g in tc.groupby(["opt", "steps"], sort=False)]
        rows += [dict(checkpoint=f"{o} (both steps)", **block(g)) for o, g in tc.groupby("opt")]
        rows.append(dict(checkpoint="all", **block(tc)))
        out = pd.DataFrame(rows)
        # the verdict compares the optimizers tensor by tensor: the error of log(R_sgdm / R_adam)
        ratio_rows = []
        if {"adam", "sgdm"} <= set(tc.opt):
            pair = tc.pivot_table(index=["steps", "seed", "layer"], columns="opt", values=["r_med", "exact_r_med"])
            e = (np.log(pair["r_med"]["sgdm"] / pair["r_med"]["adam"])
                 - np.log(pair["exact_r_med"]["sgdm"] / pair["exact_r_med"]["adam"])).dropna().rename("e").reset_index()
            sampled = set(tc.layer[tc.sampled])
            for step, g in [*e.groupby("steps"), ("all", e)]:
                mean_by_run = g.groupby(["steps", "seed"]).e.mean()  # over every tensor, as the verdict reads it
                gs = g[g.layer.isin(sampled)]  # a tensor computed whole has no error of its own
                ratio_rows.append(dict(checkpoint="all" if step == "all" else f"step {step}", pairs=len(gs),
                                       log_ratio_err_median=gs.e.abs().median(), log_ratio_err_worst=gs.e.abs().max(),
                                       mean_log_ratio_err_worst=mean_by_run.abs().max()))
        if ratio_rows:
            out = out.merge(pd.DataFrame(ratio_rows), on="checkpoint", how="outer")
        frames.append(out.assign(config=config))
    out = pd.concat(frames, ignore_index=True)
    out = out[["config", *[c for c in out.columns if c != "config"]]]
    save("probe_accuracy", out.round(4),
         "The study model's sampled probe (rmed_per_layer(method='sampled'); configurations, as keyword "
         "arguments: " + "; ".join(f"'{c}': {k or 'the defaults'}" for c, k in CONFIGS.items()) + ") against the exact "
         "diagonal on four checkpoints -- Adam and SGD-M after 750 and 1,250 iterations of study seed 0 -- with "
         "estimate seeds 0..2, on the probes' 512-token Hessian batch, float32, CPU, one thread per process. "
         "err: |R_med estimate / exact - 1| over every tensor (tensors the estimate computes whole count with their "
         "rounding error); max_part / median_part: the same for max|h| and median|h| of the sampled tensors; "
         "median_err_sampled: the same over the sampled tensors only (the goal's reading: most tensors are computed whole, "
         "which makes median_err 0); mean_log_err: the mean of log(estimate / exact) (a bias); coverage: sampled tensors whose interval holds "
         "the exact value (stated: 95%); width_median: median upper/lower; undefined_tensors: tensors whose exact diagonal "
         "is zero in theory by the undefined rule (rounding noise: left out of every error), undefined_mismatches: "
         "(tensor, run) pairs the estimate and the exact table call undefined differently. Rows 'step N' / 'all': the error of the "
         "per-tensor log(R_sgdm / R_adam) against exact (median and worst over the sampled tensors and the seeds; pairs: "
         "how many) and, worst over seeds, of its mean over every tensor -- the log of the geometric-mean ratio the study's verdict reads. "
         "Seconds are per run (processes ran two at a time beside other work; the load is in "
         "probe_accuracy_tensors.csv); exact_products / exact_seconds: the exact diagonal of the checkpoint, one "
         "tensor at a time (bench_probe.py exact), per checkpoint.",
         "python benchmarks/bench_probe.py summary")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("section", choices=["exact", "accuracy", "speed", "proxies", "activation", "summary"])
    ap.add_argument("--opt", choices=["adam", "sgdm"], default="adam")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--draws", type=int, default=32)
    ap.add_argument("--config", choices=list(CONFIGS), default="defaults")
    ap.add_argument("--thread-counts", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(machine(), flush=True)
    if a.section == "exact":
        exact_diagonals(a.opt, a.steps, a.threads)
    elif a.section == "accuracy":
        accuracy(a.opt, a.steps, a.seeds, a.threads, a.config)
    elif a.section == "proxies":
        proxies(a.draws)
    elif a.section == "activation":
        activation(a.draws)
    elif a.section == "speed":
        speed(a.opt, a.steps, a.reps, a.thread_counts)
    else:
        summary()


if __name__ == "__main__":
    main()
