# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (chapter-own-model)=
# # R_med of your own model
#
# `rmed_core.hessian` measures the models people write, as they write them: attention through
# `torch.nn.functional.scaled_dot_product_attention` (nanoGPT, `nn.MultiheadAttention`,
# `nn.TransformerEncoderLayer`, Hugging Face's default), Hugging Face's `Conv1D` layers, a head tied
# to the token embedding, and the Hugging Face convention of keyword inputs and a model that
# computes its own `.loss`. Nothing needs rewriting:
#
# - every forward pass the engine makes runs `scaled_dot_product_attention` on its math backend
#   (`torch.nn.attention.sdpa_kernel(SDPBackend.MATH)`), which is made of twice-differentiable
#   operations; the fused kernels have no second derivative. The caller's backend selection is
#   restored afterwards, and nothing on the model changes;
# - a module is treated as a Linear layer when what it computes is verified, not by its class:
#   rerun on its own input with fresh copies of its weight and bias it gives the same output, its
#   graph is affine in them, and its gradient at a random cotangent is a Linear's (`x W^T + b`, or
#   `x W + b` for GPT-2's `Conv1D`, whose weight is stored transposed; an elementwise `a * w + b`
#   for a hand-written LayerNorm). A module that fails a check is computed by brute force, with the
#   reason in `info["fallback"]`;
# - a weight tied between two layers is exact from the products of its two uses: the cross term
#   between them comes with the products of the earlier use, at no extra product;
# - `batch` may be a dict of keyword inputs; with `loss_fn=None` the loss is the model's own
#   `.loss` (the dict must hold `labels`); a loss function receives the model's output, or its
#   `.logits` when the model returns an output object.
#
# Below, a Hugging Face GPT-2 built from a small config (random initialisation: nothing is
# downloaded) and a nanoGPT-style model, each with the three calls a user copies, what each cost,
# and the exact diagonal against brute force in float64; then the sampled estimate at a size where
# the exact diagonal is too costly.
#
# Regenerate with `papermill notebooks/own_model.py out.ipynb -p scale book` (`-p scale ci` runs
# smaller models in seconds).

# %% tags=["parameters"]
scale: str = "book"  # ci | book
seed: int = 0

# %% tags=["hide-input"]
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import NullFormatter
from transformers import GPT2Config, GPT2LMHeadModel

import rmed_core
from rmed_core.book.plots import figure_grid
from rmed_core.book.report import glue_figure, glue_number, glue_text, show_provenance
from rmed_core.hessian import hessian_diagonal, rmed_per_layer, top_eigenvalues
from rmed_core.hessian.exact import probe_plan
from rmed_core.hessian.testing import NanoGPT, allclose_report, max_rel_error
from rmed_core.models import lm_loss
from rmed_core.provenance import provenance
from rmed_core.validation import check_choice

check_choice("scale", scale, ("ci", "book"))
started = time.perf_counter()
torch.manual_seed(seed)
torch.set_num_threads(1)  # small models: threads only spin-wait on a shared machine
RESULTS = Path(rmed_core.__file__).resolve().parent.parent / "benchmarks" / "results"
#: sizes: the models checked against brute force, and the larger GPT-2 of the sampled estimate
SIZES = {"ci": dict(exact=dict(vocab=11, d=8, layers=1, seq=5, batch=2),
                    sampled=dict(vocab=64, d=16, layers=1, seq=8, batch=4)),
         "book": dict(exact=dict(vocab=32, d=16, layers=2, seq=8, batch=4),
                      sampled=dict(vocab=512, d=64, layers=2, seq=32, batch=8))}[scale]


def gpt2(vocab, d, layers, seq, **_):
    """GPT-2 from a small config, random weights, dropout off; the special tokens inside the vocabulary."""
    cfg = GPT2Config(vocab_size=vocab, n_positions=seq, n_embd=d, n_layer=layers, n_head=2, bos_token_id=0,
                     eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg).eval()
    model.loss_type = "ForCausalLM"
    return model


def token_batch(vocab, seq, batch, **_):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=g)


def timed(call):
    t = time.perf_counter()
    out = call()
    return out, time.perf_counter() - t


# %% [markdown]
# ## A Hugging Face GPT-2
#
# The batch is the model's keyword inputs; `loss_fn=None` uses the model's own `.loss` (GPT-2
# shifts the labels itself). The three calls:

# %%
model = gpt2(**SIZES["exact"]).double()
ids = token_batch(**SIZES["exact"])
batch = {"input_ids": ids, "labels": ids}

info = {}
diag, t_diag = timed(lambda: hessian_diagonal(model, None, batch, info=info))        # {name: tensor}
table, t_table = timed(lambda: rmed_per_layer(model, None, batch))                  # one row per tensor
top, t_top = timed(lambda: top_eigenvalues(model, None, batch, k=3))                # Lanczos
table[["layer", "numel", "n_used", "r_med", "undefined"]].head(8)

# %% [markdown]
# How each tensor was computed: GPT-2's `Conv1D` layers were verified to be Linear layers (weight
# stored transposed), the token embedding is tied to the output layer, and nothing went to brute
# force. Against brute force -- one Hessian-vector product per entry, in parameter space, a path
# independent of the structured one -- in float64:

# %% tags=["hide-input"]
brute_info = {}
brute, t_brute = timed(lambda: hessian_diagonal(model, None, batch, method="brute", info=brute_info))
paths = pd.Series(info["paths"]).value_counts().rename_axis("path").rename("tensors").to_frame()
gpt2_err = glue_number("own_gpt2_err", max_rel_error(diag, brute))
assert gpt2_err <= 1e-6, allclose_report(diag, brute)
assert not info["fallback"], info["fallback"]
assert info["paths"]["transformer.wte.weight"] == "tied"
# an eigenvalue of largest magnitude bounds every diagonal entry, |lambda_1| >= max_i |H_ii| (up to
# the accuracy Lanczos was asked for, 1e-3)
assert abs(top.eigenvalues[0]) >= max(float(h.abs().max()) for h in brute.values()) * (1 - 1e-3)
paths

# %% [markdown]
# The largest error against brute force, relative to each tensor's largest entry, is
# {glue:text}`own_gpt2_err:.1e`. GPT-2's own loss runs in float32 (it casts the logits), so the two
# agree to float32's rounding; a loss function on `.logits` in float64 agrees to float64's.
#
# ## A nanoGPT-style model
#
# `rmed_core.hessian.testing.NanoGPT` is written the way nanoGPT writes it: causal attention by
# `F.scaled_dot_product_attention(q, k, v, is_causal=True)`, one fused `c_attn` projection,
# nanoGPT's own `LayerNorm` (`F.layer_norm` with a weight and an optional bias), the output layer
# tied to the token embedding. The batch is `(inputs, targets)` and the loss a function of the
# logits:

# %%
s = SIZES["exact"]
nano = NanoGPT(s["vocab"], d=s["d"], n_layer=s["layers"], n_head=2, block=s["seq"]).double().eval()
x = token_batch(**s)
y = torch.roll(x, -1, dims=1)  # next-token targets
nano_batch = (x, y)

nano_info = {}
nano_diag, t_nano_diag = timed(lambda: hessian_diagonal(nano, lm_loss, nano_batch, info=nano_info))
nano_table, t_nano_table = timed(lambda: rmed_per_layer(nano, lm_loss, nano_batch))
nano_top, t_nano_top = timed(lambda: top_eigenvalues(nano, lm_loss, nano_batch, k=3))
nano_table[["layer", "numel", "n_used", "r_med", "undefined"]].head(8)

# %% tags=["hide-input"]
nano_brute_info = {}
nano_brute, t_nano_brute = timed(lambda: hessian_diagonal(nano, lm_loss, nano_batch, method="brute",
                                                          info=nano_brute_info))
nano_err = glue_number("own_nano_err", max_rel_error(nano_diag, nano_brute))
assert nano_err <= 1e-6, allclose_report(nano_diag, nano_brute)
assert not nano_info["fallback"], nano_info["fallback"]
assert nano_info["paths"]["wte.weight"] == "tied" and nano_info["paths"]["ln_f.weight"] == "structured"
assert abs(nano_top.eigenvalues[0]) >= max(float(h.abs().max()) for h in nano_brute.values()) * (1 - 1e-3)
pd.Series(nano_info["paths"]).value_counts().rename_axis("path").rename("tensors").to_frame()

# %% [markdown]
# Against brute force the largest relative error is {glue:text}`own_nano_err:.1e`; nanoGPT's
# LayerNorm is recognised as an elementwise affine map, its tied head as a tied weight.
#
# ## What each call cost
#
# Products are Hessian-vector products (or products in a layer's output space, which cost about
# the same or less); seconds on this machine, one thread.

# %% tags=["hide-input"]
costs = pd.DataFrame([
    dict(model="GPT-2", call="hessian_diagonal", products=info["n_hvp"], seconds=t_diag),
    dict(model="GPT-2", call="rmed_per_layer", products=table.attrs["products"], seconds=t_table),
    dict(model="GPT-2", call="top_eigenvalues(k=3)", products=top.n_hvp, seconds=t_top),
    dict(model="GPT-2", call="brute force", products=brute_info["n_hvp"], seconds=t_brute),
    dict(model="nanoGPT", call="hessian_diagonal", products=nano_info["n_hvp"], seconds=t_nano_diag),
    dict(model="nanoGPT", call="rmed_per_layer", products=nano_table.attrs["products"], seconds=t_nano_table),
    dict(model="nanoGPT", call="top_eigenvalues(k=3)", products=nano_top.n_hvp, seconds=t_nano_top),
    dict(model="nanoGPT", call="brute force", products=nano_brute_info["n_hvp"], seconds=t_nano_brute),
])
costs["parameters"] = costs.model.map({"GPT-2": sum(p.numel() for p in model.parameters()),
                                       "nanoGPT": sum(p.numel() for p in nano.parameters())})
glue_number("own_gpt2_exact_share", 100 * info["n_hvp"] / brute_info["n_hvp"])
glue_number("own_nano_exact_share", 100 * nano_info["n_hvp"] / nano_brute_info["n_hvp"])
assert brute_info["n_hvp"] == costs.parameters[0]  # brute force: one product per entry
costs.round({"seconds": 2})

# %% [markdown]
# The exact diagonal spent {glue:text}`own_gpt2_exact_share:.0f`% of brute force's products on GPT-2
# and {glue:text}`own_nano_exact_share:.0f`% on the nanoGPT-style model.

# %% tags=["hide-input"]
fig, axes = figure_grid(2, width=3.9, height=0.22 * max(len(table), len(nano_table)) + 0.8)
top_r = max(float(t.r_med.max()) for t in (table, nano_table))
for ax, t, title in ((axes[0], table, "GPT-2 (Hugging Face)"), (axes[1], nano_table, "nanoGPT-style")):
    d = t[t.undefined == ""]
    ax.barh(np.arange(len(d)), d.r_med, color="#1f77b4")
    ax.set_yticks(np.arange(len(d)), [n.replace("transformer.", "") for n in d.layer], fontsize=6)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(0.8, 2 * top_r)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"$R_\mathrm{med}$ (exact)")
    ax.set_title(title, fontsize=9)
glue_figure("own_model_rmed", fig)
# GPT-2 fuses the query, key and value projections in one tensor (columns q | k | v)
h = diag["transformer.h.0.attn.c_attn.weight"].abs().reshape(SIZES["exact"]["d"], 3, -1)
thirds = h.transpose(0, 1).reshape(3, -1).median(1).values
glue_number("own_qkv_v_over_q", float(thirds[2] / thirds[0]))
glue_number("own_qkv_v_over_k", float(thirds[2] / thirds[1]))

# %% [markdown]
# ```{glue:figure} own_model_rmed
# :name: fig-own-model-rmed
#
# Exact $R_\mathrm{med}$ of every parameter tensor at initialisation (random weights, one batch),
# for the two models above; tensors whose R_med is undefined are left out (their reason is in the
# table's `undefined` column).
# ```
#
# Both models fuse the query, key and value projections into one tensor, `c_attn`. With GPT-2's
# initialisation (weights of standard deviation 0.02) the attention scores are close to zero and
# the query and key parts have almost no curvature: in GPT-2's first block the median $|h|$ of the
# value part is {glue:text}`own_qkv_v_over_q:.2g` times that of the query part and
# {glue:text}`own_qkv_v_over_k:.2g` times that of the key part. The fused tensor's maximum comes
# from its value part and its median from the other two, which makes its R_med so large; it is
# not the R_med of three separate projections, so compare such a tensor with its like. (The
# nanoGPT-style model keeps torch's default initialisation, with larger weights, and its `c_attn`
# is far less lopsided.)

# %% tags=["remove-input"]
show_provenance("own_model", {"scale": scale, "seed": seed},
                {**provenance(torch.device("cpu"), seed=seed, wall_time_s=round(time.perf_counter() - started, 1)),
                 "models": f"GPT2LMHeadModel {SIZES['exact']}, NanoGPT of the same sizes, float64"})

# %% [markdown]
# ## GPT-2 against the same model written with `nn.Linear`
#
# `benchmarks/bench_own_model.py` measures a larger GPT-2 (2 blocks, width 32, 96 words, 16
# positions) and its twin with every `Conv1D` replaced by the `nn.Linear` computing the same
# function, in one process, alternating; the table is read from `benchmarks/results/own_model_gpt2.csv`
# (machine, load and command in the `.md` beside it).

# %% tags=["hide-input"]
bench_file = RESULTS / "own_model_gpt2.csv"
bench = pd.read_csv(bench_file) if bench_file.exists() else None
if bench is None:
    glue_text("own_bench_status", "not measured")
    for key in ("products_ratio", "seconds_ratio", "exact_products", "parameters"):
        glue_number(f"own_bench_{key}", float("nan"))
    bench_view = pd.DataFrame({"status": ["not measured: run benchmarks/bench_own_model.py"]})
else:
    exact_rows = bench[bench.method == "exact"].set_index("model")
    glue_text("own_bench_status", "measured")
    glue_number("own_bench_products_ratio", exact_rows.products_vs_conv1d.max())
    glue_number("own_bench_seconds_ratio", exact_rows.seconds_vs_conv1d.max())
    glue_number("own_bench_exact_products", exact_rows.products.iloc[0])
    glue_number("own_bench_parameters", exact_rows.parameters.iloc[0])
    # the goal: the two within 10% of each other (products are machine-independent)
    assert (abs(exact_rows.products_vs_conv1d - 1) <= 0.10).all(), exact_rows
    bench_view = bench[["model", "method", "median_s", "reps", "products", "parameters", "products_vs_conv1d",
                        "seconds_vs_conv1d", "median_rel_error", "worst_rel_error", "intervals_holding_exact"]]
bench_view

# %% [markdown]
# Status: {glue:text}`own_bench_status`. The exact diagonal of the GPT-2 cost
# {glue:text}`own_bench_exact_products:.0f` products for {glue:text}`own_bench_parameters:.0f` parameters
# (brute force: one each); the `nn.Linear` twin spent {glue:text}`own_bench_products_ratio:.3f` times as
# many and took {glue:text}`own_bench_seconds_ratio:.2f` times as long (the larger of the two ratios).
#
# ## The sampled estimate, where exact is too costly
#
# At a larger size the exact diagonal of a layer applied at every position costs about
# `min(T, J) K` products, as much as brute force once `T >= J`. `method="sampled"` computes a few
# hundred exact entries per tensor instead, chosen by two proxies, and says with what confidence its
# interval holds the exact value (chapter "Computing R_med"). The exact method's cost is counted
# here without being paid (`probe_plan`).

# %%
big = gpt2(**SIZES["sampled"])
big_ids = token_batch(**SIZES["sampled"])
big_batch = {"input_ids": big_ids, "labels": big_ids}
sampled, t_sampled = timed(lambda: rmed_per_layer(big, None, big_batch, method="sampled", seed=seed))
sampled[["layer", "numel", "r_med", "lower", "upper"]].head(8)

# %% tags=["hide-input"]
plan = probe_plan(big, None, big_batch)
n_big = sum(p.numel() for p in big.parameters())
glue_number("own_sampled_products", sampled.attrs["products"])
glue_number("own_sampled_seconds", t_sampled)
glue_number("own_sampled_plan", plan)
glue_number("own_sampled_parameters", n_big)
glue_number("own_sampled_share", 100 * sampled.attrs["products"] / plan)
# one sampled tensor computed exactly, independently: its R_med must lie in the interval, and the
# estimate's maximum (a verified entry) cannot exceed the exact maximum
# (the smallest weight the estimate sampled: the cheapest to compute exactly)
check = min((r for r in sampled.itertuples() if r.layer not in sampled.attrs["exact"] and r.undefined == ""
             and r.layer.endswith(".weight")), key=lambda r: r.numel)
one = rmed_per_layer(big, None, big_batch, params=[check.layer]).iloc[0]
glue_text("own_sampled_check", check.layer.replace("transformer.", ""))
glue_number("own_sampled_check_exact", one.r_med)
glue_number("own_sampled_check_est", check.r_med)
assert check.lower <= one.r_med * (1 + 1e-6) and one.r_med <= check.upper * (1 + 1e-6), (check, one)
assert check.h_max <= one.h_max * (1 + 1e-5)
assert sampled.attrs["products"] < plan

# %% [markdown]
# The sampled estimate of this GPT-2 ({glue:text}`own_sampled_parameters:.0f` parameters) spent
# {glue:text}`own_sampled_products:.0f` products in {glue:text}`own_sampled_seconds:.0f` s, where the exact
# diagonal would spend {glue:text}`own_sampled_plan:.0f` ({glue:text}`own_sampled_share:.0f`%). One of its
# sampled tensors, {glue:text}`own_sampled_check`, computed exactly on its own: R_med
# {glue:text}`own_sampled_check_exact:.3g` against the estimate {glue:text}`own_sampled_check_est:.3g`,
# inside the 95% interval.

# %% tags=["hide-input"]
d = sampled[sampled.undefined == ""].reset_index(drop=True)
whole = d.layer.isin(sampled.attrs["exact"])
fig, axes = figure_grid(1, width=6.0, height=0.2 * len(d) + 0.9)
ax = axes[0]
pos = np.arange(len(d))
ax.hlines(pos[~whole], d.lower[~whole], d.upper.where(np.isfinite(d.upper), d.r_med)[~whole], color="#9ecae1", lw=3,
          label="95% interval")
ax.plot(d.r_med[~whole], pos[~whole], "o", ms=3, color="#1f77b4", label="estimate")
ax.plot(d.r_med[whole], pos[whole], "s", ms=3, color="#7f7f7f", label="computed whole (exact)")
ax.plot([one.r_med], [int(d.index[d.layer == check.layer][0])], "x", color="#d62728", ms=6,
        label="exact (one tensor)")
ax.set_yticks(pos, [n.replace("transformer.", "") for n in d.layer], fontsize=6)
ax.invert_yaxis()
ax.set_xscale("log")
ax.set_xlabel(r"$R_\mathrm{med}$")
ax.legend(fontsize=7, loc="lower right")
glue_figure("own_model_sampled", fig)

# %% [markdown]
# ```{glue:figure} own_model_sampled
# :name: fig-own-model-sampled
#
# The sampled estimate of every tensor of the larger GPT-2 with its 95% interval (where an upper end
# is infinite, the bar stops at the estimate); the tensors whose exact diagonal is cheap are
# computed whole, and one sampled tensor was computed exactly on its own.
# ```

# %% tags=["remove-input"]
show_provenance("own_model", {"scale": scale, "seed": seed},
                {**provenance(torch.device("cpu"), seed=seed, wall_time_s=round(time.perf_counter() - started, 1)),
                 "model": f"GPT2LMHeadModel {SIZES['sampled']}, float32",
                 "benchmark table": "own_model_gpt2" if bench is not None else "none"})
