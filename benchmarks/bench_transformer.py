"""Goal 1: structured exact diagonal vs brute force (one-hot vmapped HVPs) on a small TransformerLM.

Both methods run in the same process on the same model and batch, alternating, ``--reps`` times;
the table reports the median wall time, the HVP count and the agreement. A second table gives
the HVP counts (deterministic) for wider models, where brute force was not timed.

    .venv/bin/python benchmarks/bench_transformer.py --reps 5
"""
from __future__ import annotations

import argparse
import sys

import pandas as pd
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import median, save, timed  # noqa: E402

from rmed_core.hessian import hessian_diagonal  # noqa: E402
from rmed_core.models import TransformerLM, lm_loss  # noqa: E402


def setup(d: int, vocab: int, seq: int, batch: int, layers: int = 2):
    torch.manual_seed(0)
    m = TransformerLM(vocab, d, layers, 2, seq).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, vocab, (batch, seq), generator=g)
    y = torch.randint(0, vocab, (batch, seq), generator=g)
    return m, (x, y)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=50)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m, batch = setup(a.d, a.vocab, a.seq, a.batch)
    times = {"exact": [], "brute": []}
    hvps, diags = {}, {}
    for r in range(a.reps):
        for meth in ("exact", "brute"):
            info: dict = {}
            t, d = timed(lambda: hessian_diagonal(m, lm_loss, batch, method=meth, info=info))
            times[meth].append(t)
            hvps[meth], diags[meth] = info["n_hvp"], d
            print(f"rep {r} {meth}: {t:.1f} s, {info['n_hvp']} HVPs", flush=True)
    err = max(float((diags["exact"][n] - diags["brute"][n]).abs().max() / diags["brute"][n].abs().max().clamp_min(1e-30))
              for n in diags["brute"])
    n_par = sum(p.numel() for p in m.parameters())
    rows = [dict(method=k, median_s=median(v), min_s=min(v), max_s=max(v), reps=len(v), n_hvp=hvps[k],
                 speedup_vs_brute=median(times["brute"]) / median(v)) for k, v in times.items()]
    df = pd.DataFrame(rows)
    header = (f"TransformerLM d_model={a.d}, 2 layers, 2 heads, seq={a.seq}, vocab={a.vocab}, batch={a.batch}, "
              f"{n_par} parameters, float32, CPU. Max relative difference exact vs brute (per tensor, relative to "
              f"its max |h|): {err:.1e}.")
    save("transformer_exact_vs_brute", df, header,
         f"python benchmarks/bench_transformer.py --reps {a.reps} --d {a.d} --vocab {a.vocab} --seq {a.seq} --batch {a.batch}")
    rows = []
    for d in (32, 64, 128, 256):
        mm, bb = setup(d, a.vocab, a.seq, 2)
        from rmed_core.hessian.exact import probe_plan
        plan = probe_plan(mm, lm_loss, bb)
        n = sum(p.numel() for p in mm.parameters())
        rows.append(dict(d_model=d, parameters=n, brute_hvps=n, exact_probes=plan, ratio=n / plan))
    save("transformer_probe_counts", pd.DataFrame(rows),
         f"HVP counts (deterministic) of brute force (one per parameter) and the structured exact method "
         f"(z-space probes incl. structure checks), seq={a.seq}, vocab={a.vocab}. Not timed.",
         "python benchmarks/bench_transformer.py (second table)")


if __name__ == "__main__":
    main()
