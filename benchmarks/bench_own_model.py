"""Goal: a Hugging Face GPT-2 costs what the same architecture written with ``nn.Linear`` costs --
its ``Conv1D`` layers recognised as Linear layers, its head tied to the token embedding, its
attention on ``scaled_dot_product_attention`` -- the exact diagonal within 10% in products and in
seconds, and the sampled estimate beside it.

Both models in one process, on the same batch: ``GPT2LMHeadModel`` from a small random
``GPT2Config`` (default attention, nothing downloaded; ``--layers`` blocks, width ``--d``,
vocabulary ``--vocab``, ``--seq`` positions, ``--batch`` sequences, float32, CPU) and its twin
with every ``Conv1D`` replaced by the ``nn.Linear`` computing the same function
(:func:`rmed_core.hessian.testing.linear_twin`). The loss is the model's own (``loss_fn=None``, a
dict batch with labels). Alternating, ``--reps`` times: ``rmed_per_layer`` exact (the whole
diagonal) and sampled (seed = repetition). Reported: median, min and max seconds, products,
the ratio of each to the Conv1D model's; for the sampled estimate its error against exact
R_med (median and worst over tensors) and how many tensors' intervals hold the exact value (to
float32's rounding, 1e-5 relative: tensors computed whole by both agree to that, not bitwise).
Brute force would spend one product per parameter (``parameters``).

    .venv/bin/python benchmarks/bench_own_model.py --reps 3
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

from rmed_core.hessian import rmed_per_layer  # noqa: E402
from rmed_core.hessian.testing import linear_twin  # noqa: E402


def gpt2(vocab: int, d: int, layers: int, seq: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=vocab, n_positions=seq, n_embd=d, n_layer=layers, n_head=2, bos_token_id=0,
                     eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    m = GPT2LMHeadModel(cfg).eval()
    m.loss_type = "ForCausalLM"
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=96)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = gpt2(a.vocab, a.d, a.layers, a.seq)
    twin, transposed = linear_twin(m)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq), generator=g)
    batch = {"input_ids": ids, "labels": ids}
    models = {"GPT-2 (Conv1D)": m, "GPT-2 with nn.Linear": twin}
    rmed_per_layer(m, None, batch, params=["transformer.ln_f.bias"])  # warm-up (first vmap call)
    times = {(k, meth): [] for k in models for meth in ("exact", "sampled")}
    products: dict = {}
    tables: dict = {}
    for r in range(a.reps):
        for k, model in models.items():
            for meth in ("exact", "sampled"):
                kw = dict(method=meth, seed=r)
                t, df = timed(lambda: rmed_per_layer(model, None, batch, **kw))
                times[(k, meth)].append(t)
                products[(k, meth)] = df.attrs["products"]
                tables[(k, meth, r)] = df.set_index("layer")
                print(f"rep {r} {k} {meth}: {t:.1f} s, {df.attrs['products']} products", flush=True)
    exact = {k: tables[(k, "exact", 0)] for k in models}
    # the same function: exact R_med of the two models agree (a transposed weight has the same entries)
    agree = max(float(abs(exact[k].r_med.fillna(0) - exact["GPT-2 (Conv1D)"].r_med.fillna(0)).max()
                      / exact["GPT-2 (Conv1D)"].r_med.abs().max()) for k in models)
    n_params = sum(p.numel() for p in m.parameters())
    base = "GPT-2 (Conv1D)"
    rows = []
    for (k, meth), v in times.items():
        row = dict(model=k, method=meth, median_s=round(median(v), 2), min_s=round(min(v), 2), max_s=round(max(v), 2),
                   reps=len(v), products=products[(k, meth)], parameters=n_params,
                   products_vs_conv1d=round(products[(k, meth)] / products[(base, meth)], 3),
                   seconds_vs_conv1d=round(median(v) / median(times[(base, meth)]), 3))
        if meth == "sampled":
            err, covered = [], 0
            for r in range(a.reps):
                est, ex = tables[(k, meth, r)], exact[k]
                ok = ex.r_med.notna()
                e = (est.r_med[ok] / ex.r_med[ok] - 1).abs()
                err += list(e)
                # float32: a tensor computed whole by both methods agrees to its rounding, not exactly
                covered += int(((est.lower[ok] <= ex.r_med[ok] * (1 + 1e-5))
                                & (ex.r_med[ok] <= est.upper[ok] * (1 + 1e-5))).sum())
            row.update(median_rel_error=round(float(np.median(err)), 4), worst_rel_error=round(float(max(err)), 4),
                       intervals_holding_exact=f"{covered}/{len(err)}")
        rows.append(row)
    header = (f"GPT2LMHeadModel({a.layers} blocks, n_embd={a.d}, 2 heads, vocab={a.vocab}, n_positions={a.seq}; "
              f"default attention) and the same with nn.Linear for every Conv1D ({len(transposed)} layers, weights "
              f"copied), {n_params} parameters, float32, CPU, a batch of {a.batch} sequences of {a.seq} tokens, the "
              f"model's own loss (a dict batch with labels). Median of {a.reps} alternating repetitions (sampled: "
              f"seed = repetition; its errors against exact R_med over all repetitions and tensors). Exact R_med of "
              f"the two models agree to {agree:.1e} (relative to the largest). Brute force: one product per "
              f"parameter.")
    save("own_model_gpt2", pd.DataFrame(rows), header,
         f"python benchmarks/bench_own_model.py --reps {a.reps} --vocab {a.vocab} --d {a.d} --layers {a.layers} "
         f"--seq {a.seq} --batch {a.batch} --threads {a.threads}")


if __name__ == "__main__":
    main()
