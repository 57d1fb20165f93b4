"""Goal: the structured exact diagonal >= 4x faster than brute force (one-hot vmapped HVPs) on
the transformer the book uses on the CPU, and more as layers get wider.

Table 1 (timed): both methods in the same process, on the same TransformerLM and batch,
alternating, ``--reps`` times, on every parameter tensor (``--tensors all``, the default) or on
three (``--tensors subset``: an attention value projection, a LayerNorm weight, the output head).
The defaults are the book's ``ptb_lm`` model and Hessian batch (character level: vocab 49,
d_model 16, 2 layers, 2 heads, 8 positions, batch 8, float32). Table 2 (not timed): the number
of products each method spends on the whole model at widths 16..128 (``probe_plan``), at the same
sequence length.

    .venv/bin/python benchmarks/bench_transformer.py --reps 5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, save, timed  # noqa: E402

from rmed_core.hessian import hessian_diagonal  # noqa: E402
from rmed_core.hessian.exact import probe_plan  # noqa: E402
from rmed_core.models import TransformerLM, lm_loss  # noqa: E402

SUBSET = ["blocks.1.attn.v.weight", "blocks.1.ln2.weight", "head.weight"]


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
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=49)
    ap.add_argument("--seq", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tensors", choices=("all", "subset"), default="all")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="transformer_exact_vs_brute",
                    help="results name (a held-out size: transformer_heldout_exact_vs_brute)")
    ap.add_argument("--no-counts", action="store_true", help="skip the second (product counts) table")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m, batch = setup(a.d, a.vocab, a.seq, a.batch)
    names = [n for n, _ in m.named_parameters()] if a.tensors == "all" else SUBSET
    hessian_diagonal(m, lm_loss, batch, params=["ln_f.bias"])  # warm-up (first vmap call)
    times = {"exact": [], "brute": []}
    hvps, diags = {}, {}
    for r in range(a.reps):
        for meth in ("exact", "brute"):
            info: dict = {}
            t, d = timed(lambda: hessian_diagonal(m, lm_loss, batch, params=names, method=meth, info=info))
            times[meth].append(t)
            hvps[meth], diags[meth] = info["n_hvp"], d
            print(f"rep {r} {meth}: {t:.1f} s, {info['n_hvp']} products", flush=True)
    # relative to each tensor's largest entry, floored at 1e-4 of the model's largest (float32
    # rounding fills tensors that are zero in theory, such as attention key biases)
    top = max(float(diags["brute"][n].abs().max()) for n in names)
    err = max(float((diags["exact"][n] - diags["brute"][n]).abs().max()
                    / max(float(diags["brute"][n].abs().max()), 1e-4 * top)) for n in names)
    numel = sum(dict(m.named_parameters())[n].numel() for n in names)
    rows = [dict(method=k, median_s=round(median(v), 3), min_s=round(min(v), 3), max_s=round(max(v), 3),
                 reps=len(v), products=hvps[k], s_per_product=median(v) / hvps[k],
                 speedup_vs_brute=round(median(times["brute"]) / median(v), 2),
                 # the realised speed-up as a fraction of the product-count ratio (1 = a structured
                 # product costs what a brute-force one costs)
                 realised_over_count_ratio=round((median(times["brute"]) / median(v)) / (hvps["brute"] / hvps[k]), 2))
            for k, v in times.items()]
    which = "all parameter tensors" if a.tensors == "all" else f"tensors {SUBSET}"
    header = (f"TransformerLM d_model={a.d}, 2 layers, 2 heads, seq={a.seq}, vocab={a.vocab}, batch={a.batch}, "
              f"float32, CPU; {which} ({numel} entries). Median of {a.reps} alternating repetitions. "
              f"Max relative difference exact vs brute (per tensor, relative to its max |h| floored at 1e-4 of the "
              f"model's max): {err:.1e}.")
    save(a.name, pd.DataFrame(rows), header,
         f"python benchmarks/bench_transformer.py --reps {a.reps} --d {a.d} --vocab {a.vocab} --seq {a.seq} "
         f"--batch {a.batch} --tensors {a.tensors} --threads {a.threads} --name {a.name}"
         + (" --no-counts" if a.no_counts else ""))
    if a.no_counts:
        return
    rows = []
    for d in (16, 32, 64, 128):
        mm, bb = setup(d, a.vocab, a.seq, a.batch)
        plan = probe_plan(mm, lm_loss, bb)
        n = sum(p.numel() for p in mm.parameters())
        rows.append(dict(d_model=d, parameters=n, brute_products=n, exact_products=plan,
                         ratio=round(n / plan, 2)))
    save("transformer_probe_counts", pd.DataFrame(rows),
         f"Products spent on the whole model (deterministic, not timed): brute force one per parameter; the "
         f"structured method its z-space probes incl. structure checks. seq={a.seq}, vocab={a.vocab}, "
         f"batch={a.batch}, 2 layers.", f"python benchmarks/bench_transformer.py --seq {a.seq} (second table)")


if __name__ == "__main__":
    main()
