"""Goal: R_med by ``method="sampled"`` at <= 5% of the exact method's cost, within 2% of exact;
beside it, Hutchinson diagonal estimates (``diag H ~ mean_r v_r * (H v_r)``, Rademacher ``v_r``;
Bekas, Kokiopoulou & Saad 2007) with the same number of products, and their R_med error.

All in one process on the same small TransformerLM and batch (``rmed_core.tasks`` does not exist
on this branch, so the book's transformer is not used). Exact: ``--reps`` repetitions; sampled:
one run per seed ``0..reps-1`` (time = median over seeds; errors over all seeds and tensors);
Hutchinson: the same seeds, as many probes as the sampled run spent products.

    .venv/bin/python benchmarks/bench_sampled.py --reps 5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, save, timed  # noqa: E402

from rmed_core.hessian import HessianOperator, rmed_per_layer  # noqa: E402
from rmed_core.models import TransformerLM, lm_loss  # noqa: E402
from rmed_core.stats import r_med  # noqa: E402


def hutchinson_rmed(m, batch, n_probes: int, seed: int) -> dict[str, float]:
    op = HessianOperator(m, lm_loss, batch)
    g = torch.Generator().manual_seed(seed)
    V = (torch.randint(0, 2, (op.dim, n_probes), generator=g) * 2 - 1).to(op.dtype)
    d = (V * op.matmat(V)).mean(1)
    out, off = {}, 0
    for name, p in op.params.items():
        out[name] = r_med(d[off:off + p.numel()])
        off += p.numel()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=50)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--n-samples", type=int, default=192)
    ap.add_argument("--bound-steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = TransformerLM(a.vocab, a.d, 2, 2, a.seq).eval()
    g = torch.Generator().manual_seed(1)
    batch = (torch.randint(0, a.vocab, (a.batch, a.seq), generator=g),
             torch.randint(0, a.vocab, (a.batch, a.seq), generator=g))
    rmed_per_layer(m, lm_loss, batch, params=["ln_f.bias"])  # warm-up
    t_exact, t_samp, t_hutch = [], [], []
    samp_err, hutch_err, covered = [], [], []
    for r in range(a.reps):
        t, ex = timed(lambda: rmed_per_layer(m, lm_loss, batch))
        t_exact.append(t)
        n_exact = ex.attrs["products"]
        ex = ex.set_index("layer")
        keep = ex.undefined == ""  # undefined R_med (zero in theory: the attention key bias) is not a number
        t, sa = timed(lambda: rmed_per_layer(m, lm_loss, batch, method="sampled", seed=r, n_samples=a.n_samples,
                                             bound_steps=a.bound_steps))
        t_samp.append(t)
        n_samp = sa.attrs["products"]
        sa = sa.set_index("layer")
        t, hu = timed(lambda: hutchinson_rmed(m, batch, n_samp, r))
        t_hutch.append(t)
        for name in ex.index[keep]:
            samp_err.append(abs(sa.r_med[name] / ex.r_med[name] - 1))
            hutch_err.append(abs(hu[name] / ex.r_med[name] - 1))
            covered.append(sa.lower[name] <= ex.r_med[name] <= sa.upper[name])
        print(f"rep {r}: exact {t_exact[-1]:.1f}s ({n_exact} products), sampled {t_samp[-1]:.1f}s ({n_samp}), "
              f"hutchinson {t_hutch[-1]:.1f}s", flush=True)
    se, he = np.array(samp_err), np.array(hutch_err)
    te = median(t_exact)
    rows = [dict(method="exact (structured)", median_s=round(te, 2), products=n_exact, cost_vs_exact=1.0,
                 median_rel_err=0.0, max_rel_err=0.0, within_2pct=1.0, interval_covers=np.nan),
            dict(method=f"sampled (n_samples={a.n_samples}, bound_steps={a.bound_steps})",
                 median_s=round(median(t_samp), 2), products=n_samp,
                 cost_vs_exact=round(median(t_samp) / te, 3), median_rel_err=float(np.median(se)),
                 max_rel_err=float(se.max()), within_2pct=float((se <= 0.02).mean()),
                 interval_covers=float(np.mean(covered))),
            dict(method=f"Hutchinson diagonal ({n_samp} probes)", median_s=round(median(t_hutch), 2),
                 products=n_samp, cost_vs_exact=round(median(t_hutch) / te, 3),
                 median_rel_err=float(np.median(he)), max_rel_err=float(he.max()),
                 within_2pct=float((he <= 0.02).mean()), interval_covers=np.nan)]
    n_par = sum(p.numel() for p in m.parameters())
    header = (f"TransformerLM d_model={a.d}, 2 layers, 2 heads, seq={a.seq}, vocab={a.vocab}, batch={a.batch} "
              f"({n_par} parameters, {int(keep.sum())} tensors counted: undefined R_med left out), float32, "
              f"CPU. {a.reps} repetitions / seeds. Errors: |R_med estimate / exact - 1| over all seeds and tensors; "
              f"cost_vs_exact is the ratio of median wall times.")
    save("sampled_vs_exact", pd.DataFrame(rows), header,
         f"python benchmarks/bench_sampled.py --reps {a.reps} --seq {a.seq} --n-samples {a.n_samples} "
         f"--bound-steps {a.bound_steps} --threads {a.threads}")


if __name__ == "__main__":
    main()
