"""The study model (``rmed_core.tasks.STUDY_SCALES``): sampled R_med against exact, the exact
method's cost, and how much R_med moves with the Hessian batch.

Sections (each writes ``results/study_<section>.{csv,md}``):

* ``accuracy`` -- on the study model after 0 and after ``--steps`` iterations of Adam (seed 0,
  lr 1e-3), in one process: the exact structured diagonal of every tensor (``--exact-reps``
  timed repetitions) and the sampled estimate (``--reps`` seeds), errors of the point estimate,
  of its median part and of its maximum part against exact, interval coverage and width. A
  per-tensor table goes to ``results/study_accuracy_tensors.csv``.
* ``batch`` -- R_med of every tensor (sampled) at Hessian batches of 256..2,048 tokens on the
  trained checkpoint, beside the 512-token batch the probes use.
* ``vocab10k`` -- the sampled probe of the whole model at the full 10k vocabulary (time, products),
  and exact values of a few tensors to check the estimate there.
* ``iteration`` -- seconds per training iteration (no probe) of the study model and of the 10k
  vocabulary, each optimizer: ``results/study_iteration.{csv,md}``.
* ``control64`` -- the control's runs of ``bundles/study`` (the CNN, one seed of each optimizer)
  trained again from the bundle's configuration, and the Hessian diagonal of the final model
  computed in float32 (as the probes do) and in float64: whether a tiny ``median|h|`` (a huge
  R_med) is the loss's curvature or rounding.

    .venv/bin/python benchmarks/bench_study.py accuracy --steps 0 --reps 3 --exact-reps 1
    .venv/bin/python benchmarks/bench_study.py accuracy --steps 750 --reps 3 --exact-reps 1
    .venv/bin/python benchmarks/bench_study.py summary
    .venv/bin/python benchmarks/bench_study.py batch
    .venv/bin/python benchmarks/bench_study.py vocab10k
    .venv/bin/python benchmarks/bench_study.py control64 --seed 0
    .venv/bin/python benchmarks/bench_study.py iteration --reps 3

Checkpoints are trained once and cached in ``benchmarks/.cache`` (weights only; loaded with
``weights_only=True``).
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, save, timed  # noqa: E402

from rmed_core.hessian import rmed_per_layer  # noqa: E402
from rmed_core.models import lm_loss  # noqa: E402
from rmed_core.optim import make_optimizer  # noqa: E402
from rmed_core.runs.files import atomic_write_bytes  # noqa: E402
from rmed_core.tasks import study_task  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
RESULTS = Path(__file__).resolve().parent / "results"
ADAM_LR = {"study": 1e-3, "study-10k": 3e-3}


#: SGD-M's learning rate on the study model: the study's tuned rate (``bundles/study/runs.csv``)
SGDM_LR = {"study": 0.1}


def checkpoint(size: str, steps: int, seed: int = 0, opt: str = "adam", save_every: int = 125):
    """The study model after ``steps`` iterations of ``opt`` (Adam at ``ADAM_LR``, SGD-M at
    ``SGDM_LR``; batches of the study's data stream for ``seed``), its data and sizes. Training
    caches the model at every multiple of ``save_every`` on the way (weights only, written
    atomically), so one run to 1,250 iterations gives every earlier checkpoint too."""
    if opt not in ("adam", "sgdm"):
        raise ValueError(f"opt={opt!r}: expected 'adam' or 'sgdm'")
    data, make, spec = study_task(size)
    torch.manual_seed(seed)
    m = make()
    def path(k: int) -> Path:
        return CACHE / (f"{size}-adam-s{seed}-{k}.pt" if opt == "adam" else f"{size}-{opt}-s{seed}-{k}.pt")

    def store(k: int) -> None:  # the project's one atomic writer
        CACHE.mkdir(exist_ok=True)
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        atomic_write_bytes(path(k), buf.getvalue())

    if path(steps).exists():
        m.load_state_dict(torch.load(path(steps), weights_only=True))
    else:
        lr = (ADAM_LR if opt == "adam" else SGDM_LR)[size]
        optimizer = make_optimizer(opt, m.parameters(), lr=lr)
        for step in range(steps):
            if save_every and step % save_every == 0 and not path(step).exists():
                store(step)
            x, y = data.batch(step, seed, spec.batch_size)
            loss = lm_loss(m(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        store(steps)
    return m.eval(), data, spec


def rel(a, b):
    return abs(a / b - 1)


def accuracy(a) -> None:
    """One checkpoint (``--steps``): exact and sampled side by side; per-tensor rows and the times
    go to ``results/study_accuracy_<steps>.csv`` (``summary`` combines the checkpoints)."""
    m, data, spec = checkpoint("study", a.steps)
    batch = data.hessian_batch(0, spec.hessian_batch)
    t_ex, t_sa, per_tensor = [], [], []
    if a.exact_from:  # the exact values of an earlier run of this section (the exact method is unchanged)
        old = pd.read_csv(a.exact_from, keep_default_na=False, na_values=["", "NaN", "nan"])
        old = old[old.step == a.steps].drop_duplicates("layer").set_index("layer")
        ex = pd.DataFrame({"numel": old.numel, "n_used": old.n_used, "r_med": old.exact_r_med,
                           "undefined": old.exact_undefined.fillna(""), "h_max": old.exact_h_max,
                           "h_median": old.exact_h_median})
        ex.attrs["products"] = int(old.exact_products.iloc[0])
        t_ex = [float(old.exact_s.iloc[0])] * int(old.exact_reps.iloc[0])
        print(f"step {a.steps}: exact values from {a.exact_from}", flush=True)
    for r in range(0 if a.exact_from else a.exact_reps):
        t, ex = timed(lambda: rmed_per_layer(m, lm_loss, batch))
        t_ex.append(t)
        print(f"step {a.steps}: exact rep {r}: {t:.0f} s, {ex.attrs['products']} products", flush=True)
    if not a.exact_from:
        ex = ex.set_index("layer")
    for seed in range(a.reps):
        t, sa = timed(lambda: rmed_per_layer(m, lm_loss, batch, method="sampled", seed=seed))
        t_sa.append(t)
        print(f"step {a.steps}: sampled seed {seed}: {t:.1f} s, {sa.attrs['products']} products", flush=True)
        for _, row in sa.iterrows():
            e = ex.loc[row.layer]
            per_tensor.append(dict(step=a.steps, seed=seed, layer=row.layer, numel=e.numel, n_used=e.n_used,
                                   exact_r_med=e.r_med, r_med=row.r_med, lower=row.lower, upper=row.upper,
                                   exact_undefined=e.undefined, undefined=row.undefined,
                                   exact_h_max=e.h_max, h_max=row.h_max, exact_h_median=e.h_median,
                                   h_median=row.h_median, sampled=row.layer not in sa.attrs["exact"],
                                   exact_s=median(t_ex), exact_reps=len(t_ex), exact_products=ex.attrs["products"],
                                   sampled_s=t, sampled_products=sa.attrs["products"], threads=a.threads,
                                   exact_source=a.exact_from or ""))
    RESULTS.mkdir(exist_ok=True)
    pd.DataFrame(per_tensor).to_csv(RESULTS / f"study_accuracy_{a.steps}.csv", index=False)


def summary(a) -> None:
    """The accuracy table over the checkpoints measured by ``accuracy``."""
    parts = sorted(RESULTS.glob("study_accuracy_[0-9]*.csv"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if not parts:
        raise SystemExit("no checkpoint measured: run the accuracy section first")
    tabs = [pd.read_csv(p, keep_default_na=False, na_values=["", "NaN", "nan"]) for p in parts]
    for t in tabs:
        t["exact_undefined"] = t.exact_undefined.fillna("")
        t["undefined"] = t.undefined.fillna("")
    rows = [_summary(t, int(t.step.iloc[0]), t.exact_s.iloc[0], float(t.groupby("seed").sampled_s.first().median()),
                     int(t.exact_reps.iloc[0]), t.seed.nunique(), t.exact_products.iloc[0],
                     int(t.groupby("seed").sampled_products.first().median())) for t in tabs]
    pt = pd.concat(tabs, ignore_index=True)
    rows.append(_summary(pt, "both", np.nan, np.nan, 0, pt.seed.nunique(), np.nan, np.nan))
    m, _, _ = checkpoint("study", 0)
    n_par = sum(p.numel() for p in m.parameters())
    for r in rows:  # brute force: one Hessian-vector product per parameter
        r["brute_products"] = n_par
        exact = r["exact_products"]
        r["brute_over_exact_products"] = round(n_par / exact, 2) if exact == exact else np.nan
    header = (f"Study model (word-level PTB, vocabulary 2,000, T=32, d_model 64, 2 blocks, 4 heads, MLP 256; "
              f"{n_par:,} parameters), Hessian batch 16 sequences = 512 tokens (training text, seed 0), float32, "
              f"CPU, {int(pt.threads.iloc[0])} thread(s). Checkpoints: Adam (lr 1e-3, batch 32) after "
              f"{', '.join(str(int(t.step.iloc[0])) for t in tabs)} iterations, each measured in its own process "
              f"(exact and sampled side by side). Exact: {int(tabs[0].exact_reps.iloc[0])} timed run(s); sampled: "
              f"seeds 0..{pt.seed.nunique() - 1} with the defaults of rmed_per_layer(method='sampled'); times are "
              f"medians. Errors |estimate/exact - 1| over every tensor with a defined exact R_med (all: tensors the "
              f"estimate computes whole count with their zero error; sampled: only tensors it samples); max_part / "
              f"median_part: the same for max|h| and median|h| of sampled tensors; coverage: fraction of sampled tensors' "
              f"intervals holding the exact value (stated: 0.95); whole_max_rel_diff: tensors the estimate computes "
              f"whole, against exact (float32 summation order); width: median of upper/lower over sampled tensors; "
              f"brute_products: one Hessian-vector product per parameter, what brute force costs (not timed here: "
              f"at the exact method's measured time per product that is many hours). "
              f"product_ratio (sampled / exact products) does not depend on the machine's load; time_ratio does, "
              f"and the exact and sampled runs of one checkpoint are not always timed under the same load (see the "
              f"load averages above).")
    save("study_accuracy", pd.DataFrame(rows), header,
         "; ".join(f"python benchmarks/bench_study.py accuracy --steps {int(t.step.iloc[0])} --reps "
                   f"{t.seed.nunique()} --exact-reps {int(t.exact_reps.iloc[0])} --threads {int(t.threads.iloc[0])}"
                   + (f" --exact-from {t.exact_source.iloc[0]}" if str(t.get('exact_source', pd.Series([''])).iloc[0])
                      not in ('', 'nan') else '') for t in tabs) + "; python benchmarks/bench_study.py summary")


def _summary(tab: pd.DataFrame, steps, te, ts, n_ex, n_sa, p_ex, p_sa) -> dict:
    d = tab[tab.exact_undefined == ""]
    s = d[d.sampled]
    err = np.abs(d.r_med / d.exact_r_med - 1)
    err_s = np.abs(s.r_med / s.exact_r_med - 1)
    mx = np.abs(s.h_max / s.exact_h_max - 1)
    md = np.abs(s.h_median / s.exact_h_median - 1)
    # coverage of the sampled tensors' intervals; a tensor computed whole is a point, equal to the
    # exact value up to float32 summation order (its largest relative difference is reported)
    cover = ((s.lower <= s.exact_r_med) & (s.exact_r_med <= s.upper)).mean()
    whole = d[~d.sampled]
    whole_diff = float(np.abs(whole.r_med / whole.exact_r_med - 1).max()) if len(whole) else np.nan
    width = (s.upper / s.lower).median()
    return dict(step=steps, exact_s=round(te, 1) if te == te else np.nan, exact_reps=n_ex,
                exact_products=p_ex, sampled_s=round(ts, 1) if ts == ts else np.nan, sampled_reps=n_sa,
                sampled_products=p_sa, time_ratio=round(ts / te, 4) if te == te else np.nan,
                product_ratio=round(p_sa / p_ex, 4) if p_ex == p_ex else np.nan,
                tensors=len(d) // max(n_sa, 1) if n_sa else len(d), undefined_agree=bool(
                    ((tab.exact_undefined == "") == (tab.undefined == "")).all()),
                median_err_all=round(float(err.median()), 4), worst_err_all=round(float(err.max()), 4),
                median_err_sampled=round(float(err_s.median()), 4), worst_err_sampled=round(float(err_s.max()), 4),
                max_part_median=round(float(mx.median()), 4), max_part_worst=round(float(mx.max()), 4),
                median_part_median=round(float(md.median()), 4), median_part_worst=round(float(md.max()), 4),
                coverage=round(float(cover), 3), width_median=round(float(width), 2),
                whole_max_rel_diff=float(f"{whole_diff:.1e}"))


def batch_sensitivity(a) -> None:
    """R_med of every tensor (sampled, estimate seed 0) on nested Hessian batches of ``--tokens``
    tokens from the training text, on one checkpoint. Each batch's result is cached in
    ``benchmarks/.cache`` as it finishes, so an interrupted run resumes where it stopped. The noise
    floor beside it: the same estimate's error against exact at the probes' 512 tokens, read from
    ``results/study_accuracy_<steps>.csv`` when the accuracy section has measured this checkpoint."""
    m, data, spec = checkpoint("study", a.steps)
    T = data.seq_len
    if 512 not in a.tokens:
        raise SystemExit("--tokens: include 512, the probes' batch, which the others are compared with")
    bad = [k for k in a.tokens if k % T]
    if bad:
        raise SystemExit(f"--tokens: {bad} are not multiples of the sequence length {T}")
    tabs, times, products = {}, {}, {}
    for tokens in a.tokens:
        cached = CACHE / f"batch-study-adam-s0-{a.steps}-{tokens}.csv"
        if cached.exists():
            df = pd.read_csv(cached, keep_default_na=False, na_values=["", "NaN", "nan"])
            print(f"{tokens} tokens: cached ({cached.name})", flush=True)
        else:
            b = data.hessian_batch(0, tokens // T)
            t, df = timed(lambda: rmed_per_layer(m, lm_loss, b, method="sampled", seed=0))
            df["seconds"], df["products"] = t, df.attrs["products"]
            CACHE.mkdir(exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            df.to_csv(tmp, index=False)
            tmp.replace(cached)
            print(f"{tokens} tokens: {t:.0f} s, {df.attrs['products']} products", flush=True)
        df["undefined"] = df.undefined.fillna("")
        tabs[tokens] = df.set_index("layer")
        times[tokens], products[tokens] = float(df.seconds.iloc[0]), int(df.products.iloc[0])
    r = pd.DataFrame({k: t.r_med.where(t.undefined == "") for k, t in tabs.items()})
    lr = np.abs(np.log(r.div(r[512], axis=0)))
    emb = [n for n in r.index if n.startswith("tok.")]
    rows = []
    for k in a.tokens:
        d = lr[k].dropna()
        rows.append(dict(tokens=k, sequences=k // T, seconds=round(times[k], 1), products=products[k],
                         defined=int(r[k].notna().sum()), median_r_med=round(float(r[k].median()), 2),
                         median_abs_log_vs_512=round(float(d.median()), 3),
                         max_abs_log_vs_512=round(float(d.max()), 3),
                         tensor_of_max=d.idxmax() if k != 512 else "",
                         over_10pct=int((d > np.log(1.1)).sum()), over_25pct=int((d > np.log(1.25)).sum()),
                         embedding_rows=int(tabs[k].n_used[emb[0]]) // m.tok.embedding_dim if emb else -1))
    out = pd.DataFrame(rows)
    acc = RESULTS / f"study_accuracy_{a.steps}.csv"
    floor = ""
    out["noise_floor_median"] = out["noise_floor_max"] = np.nan
    if acc.exists():
        t = pd.read_csv(acc, keep_default_na=False, na_values=["", "NaN", "nan"])
        t = t[(t.seed == 0) & (t.exact_undefined.fillna("") == "") & t.sampled]
        e = np.abs(np.log(t.r_med / t.exact_r_med))
        out["noise_floor_median"], out["noise_floor_max"] = round(float(e.median()), 3), round(float(e.max()), 3)
        floor = (f" Noise floor (noise_floor_median / _max, the same for every row): at 512 tokens the same "
                 f"estimate's |log(estimate/exact)| over the {len(t)} tensors it samples ({acc.name}; the tensors it "
                 f"computes whole have no estimation error); a move smaller than that is not attributable to the "
                 f"batch.")
    (RESULTS / "study_batch_tensors.csv").write_text(r.to_csv())
    header = (f"Study model after {a.steps} Adam iterations (lr 1e-3, seed 0); R_med of every tensor by the sampled "
              f"estimate (rmed_per_layer(method='sampled', seed=0)) on Hessian batches of "
              f"{', '.join(map(str, a.tokens))} tokens, each the task's hessian_batch(seed 0, tokens / {T}) from the "
              f"training text (the batches are nested: the first sequences of the largest). |log ratio| to the "
              f"512-token value the probes use, over tensors with a defined R_med; over_10pct / over_25pct: tensors "
              f"that move by more than that factor; embedding_rows: token-embedding rows present in the batch (the "
              f"statistic's support).{floor} Per-tensor values: results/study_batch_tensors.csv.")
    save("study_batch", out, header,
         f"python benchmarks/bench_study.py batch --steps {a.steps} --tokens {' '.join(map(str, a.tokens))} "
         f"--threads {a.threads}")


def vocab10k(a) -> None:
    m, data, spec = checkpoint("study-10k", a.steps)
    batch = data.hessian_batch(0, spec.hessian_batch)
    ts, sa = [], None
    for seed in range(a.reps):
        t, sa = timed(lambda: rmed_per_layer(m, lm_loss, batch, method="sampled", seed=seed))
        ts.append(t)
        print(f"10k: sampled seed {seed}: {t:.0f} s, {sa.attrs['products']} products", flush=True)
    check = a.check_tensors
    t, ex = timed(lambda: rmed_per_layer(m, lm_loss, batch, params=check))
    sa = sa.set_index("layer")
    rows = [dict(what="sampled, whole model", seconds=round(median(ts), 1), reps=len(ts),
                 products=sa.attrs["products"], tensors=len(sa))]
    for _, e in ex.iterrows():
        rows.append(dict(what=f"exact {e.layer}", seconds=np.nan, reps=1, products=np.nan, tensors=1,
                         exact_r_med=e.r_med, sampled_r_med=sa.r_med[e.layer],
                         rel_err=abs(sa.r_med[e.layer] / e.r_med - 1)))
    header = (f"Study model with the full 10k vocabulary (batch 64) after {a.steps} Adam iterations (lr 3e-3); "
              f"Hessian batch 512 tokens. Sampled probe of every tensor, median of {len(ts)} seeds; exact values "
              f"of {len(check)} tensors (timed together: {t:.0f} s) to check the estimate at this size.")
    save("study_vocab10k", pd.DataFrame(rows), header,
         f"python benchmarks/bench_study.py vocab10k --reps {a.reps} --steps {a.steps} --threads {a.threads}")


def control64(a) -> None:
    """float32 against float64 on the control's final models (see the module docstring)."""
    import json
    import tempfile

    from rmed_core.hessian import hessian_diagonal
    from rmed_core.runs.bundle import read_bundle
    from rmed_core.runs.config import TrainConfig
    from rmed_core.runs.store import ResultStore
    from rmed_core.runs.trainer import final_model, train
    from rmed_core.stats import median as median_of, r_med
    from rmed_core.tasks import get_task

    runs = read_bundle("study", "runs")
    runs = runs[(runs.sweep == "study-control") & (runs.seed == a.seed)]
    if runs.empty:
        raise SystemExit(f"--seed {a.seed}: bundles/study holds no control run of that seed")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for _, run in runs.iterrows():
            cfg = TrainConfig.from_dict(json.loads(run.config))
            res = train(cfg, ResultStore(tmp), progress=False)
            model, batch = final_model(res)
            stored = read_bundle("study", "loss", run=run.run).sort_values("step").loss.iloc[-1]
            again = res.loss.sort_values("step").loss.iloc[-1]
            loss_fn = get_task(cfg.task).loss_fn
            h = {}
            for dt in (torch.float32, torch.float64):
                m = model.to(dt)
                h[dt] = hessian_diagonal(m, loss_fn, (batch[0].to(dt), batch[1]))
            for name, h64 in h[torch.float64].items():
                a32, a64 = h[torch.float32][name].abs().double(), h64.abs()
                rows.append(dict(opt=cfg.opt, lr=cfg.lr, seed=cfg.seed, step=cfg.steps, layer=name,
                                 numel=a64.numel(), zero_fraction=round(float((a64 == 0).double().mean()), 3),
                                 h_max=float(a64.max()), h_median_f64=float(median_of(a64)),
                                 h_median_f32=float(median_of(a32)), r_med_f64=r_med(a64), r_med_f32=r_med(a32),
                                 max_rel_diff=float((a32 - a64).abs().max() / a64.max()),
                                 final_loss=float(again), bundle_final_loss=float(stored)))
    header = (f"The control's runs of bundles/study (sweep study-control, seed {a.seed}), trained again from the "
              f"bundle's configuration; the exact Hessian diagonal of each final model (iteration 1250) on the run's "
              f"Hessian batch, in float32 and in float64. zero_fraction: entries exactly zero in float64; "
              f"max_rel_diff: max |h32 - h64| / max |h64| of the tensor; final_loss / bundle_final_loss: the last training "
              f"loss of the run trained again and of the bundle's (the same run when they agree).")
    save("study_control_float64", pd.DataFrame(rows), header,
         f"python benchmarks/bench_study.py control64 --seed {a.seed} --threads {a.threads}")


def iteration(a) -> None:
    """Seconds per training iteration (forward, backward, optimizer step; no probe) of the study
    model and of its 10k-vocabulary scale, each optimizer at its rate here, median of ``--reps``
    x 10 timed iterations after 5 untimed ones, in one process."""
    import statistics
    import time

    from _common import load

    rows = []
    for size in ("study", "study-10k"):
        data, make, spec = study_task(size)
        for opt in ("adam", "sgdm"):
            torch.manual_seed(0)
            m = make()
            lr = ADAM_LR[size] if opt == "adam" else SGDM_LR.get(size, 0.1)
            optimizer = make_optimizer(opt, m.parameters(), lr=lr)
            times = []
            for step in range(5 + 10 * a.reps):
                t = time.perf_counter()
                x, y = data.batch(step, 0, spec.batch_size)
                loss = lm_loss(m(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if step >= 5:
                    times.append(time.perf_counter() - t)
            rows.append(dict(scale=size, opt=opt, batch_size=spec.batch_size, vocab=data.vocab_size,
                             iterations=len(times), s_per_iteration=round(statistics.median(times), 4),
                             load_after=load()))
            print(rows[-1], flush=True)
    save("study_iteration", pd.DataFrame(rows),
         f"Training alone (no probe): seconds per iteration, median of {10 * a.reps} iterations after 5 untimed, "
         f"float32, CPU, {a.threads} thread(s); the load average after each row.",
         f"python benchmarks/bench_study.py iteration --reps {a.reps} --threads {a.threads}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("section", choices=["accuracy", "summary", "batch", "vocab10k", "control64", "iteration"])
    ap.add_argument("--reps", type=int, default=3, help="sampled repetitions (seeds)")
    ap.add_argument("--exact-reps", type=int, default=3, help="timed exact repetitions per checkpoint")
    ap.add_argument("--steps", type=int, default=750, help="Adam iterations of the trained checkpoint")
    ap.add_argument("--tokens", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--check-tensors", nargs="+",
                    default=["blocks.1.attn.v.weight"])
    ap.add_argument("--seed", type=int, default=0, help="control64: the seed of the control's runs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--exact-from", default=None, metavar="CSV",
                    help="accuracy: take the exact values (and their timing) from an earlier study_accuracy_<steps>.csv "
                         "instead of computing them again")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    {"accuracy": accuracy, "summary": summary, "batch": batch_sensitivity, "vocab10k": vocab10k,
     "control64": control64, "iteration": iteration}[a.section](a)


if __name__ == "__main__":
    main()
