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
# # Computing R_med
#
# $R_\mathrm{med}$ of one parameter tensor is the ratio of the largest to the median absolute
# entry of the diagonal $h$ of the loss Hessian restricted to that tensor (Jiang, Malik, Li,
# NeurIPS 2023, as quoted by Ahn et al. 2023):
#
# $$R_\mathrm{med} = \frac{\max_k |h_k|}{\operatorname{median}_k |h_k|},\qquad h_k = \frac{\partial^2 L}{\partial\theta_k^2}.$$
#
# This chapter explains how `rmed_core.hessian` computes $h$ exactly, checks it live against
# `torch.autograd.functional.hessian`, and shows the costs measured by the scripts in
# `benchmarks/`. Costs are stated in units of one gradient (one forward and backward pass); a
# Hessian-vector product (HVP, reverse-over-reverse) costs about two.
#
# Regenerate with `papermill notebooks/computing_rmed.py out.ipynb -p scale book` (`-p scale ci`
# runs a smaller exactness table in seconds).

# %% tags=["parameters"]
scale: str = "book"  # ci | book | paper
seed: int = 0

# %% tags=["hide-input"]
import time

import pandas as pd
import torch
from IPython.display import display

from rmed_core.book.report import glue_number, glue_values, show_provenance
from rmed_core.hessian import hessian_diagonal, rmed_per_layer
from rmed_core.hessian.testing import make_case, max_rel_error, reference_diagonal
from rmed_core.provenance import provenance
from rmed_core.study.goals import (BENCHMARKS, goal_table, probe_accuracy_summary, probe_activation_summary,
                                   probe_configs, probe_configs_sentence, probe_proxies_summary, read_tables,
                                   results_dir, study_accuracy_summary, study_batch_summary)

started = time.perf_counter()

torch.manual_seed(seed)
pd.set_option("display.max_colwidth", None)  # the goals table's sentences are shown whole
torch.set_num_threads(1)  # tiny models: threads only spin-wait on a shared machine

# %% [markdown]
# ## Brute force: one HVP per entry
#
# $h_k = e_k^\top \nabla^2 L\, e_k$: one HVP per parameter entry (vmapped in chunks), so about
# $2p$ gradients for $p$ entries. Exact for every differentiable model; it is the fallback of the
# structured method and the baseline of the benchmarks (`method="brute"`).
#
# ## Structured exact method: products in each layer's output space
#
# For a layer $z_{nti} = \sum_j A_{ntj} W_{ij} + b_i$ ($n$ sample, $t$ position, $i$ output unit,
# $j$ input feature) whose weight is used once,
#
# $$\frac{\partial^2 L}{\partial W_{ij}^2} = \sum_n \sum_{t,t'} A_{ntj} A_{nt'j}\, B_{n,i}[t,t'],\qquad B_{n,i}[t,t'] = \frac{\partial^2 L}{\partial z_{nti}\,\partial z_{nt'i}}.$$
#
# $B$ is reached with HVPs in $z$-space (a zero tensor added to the output by a forward hook),
# which traverse only the network downstream of the layer. All samples are probed at once after
# the block structure over samples has been *verified* with $\lceil\log_2 N\rceil$ random probes.
# Per layer with $K$ outputs, $J$ inputs and $T$ positions the cost is $K$ products when the
# $z$-Hessian is block-diagonal over positions too (any layer with $T=1$; an output layer under a
# per-token loss), otherwise $\min(T K,\ J K + K)$ — for a transformer layer with $T \ge J$ that is
# as many products as the layer has entries. A weight tied between two layers (a token embedding
# and the output head) is the sum of its two uses' diagonals and twice their cross term, which the
# products of the earlier use return too (path `"tied"`); other re-used weights and unsupported
# modules fall back to brute force (`method="exact"`, the default). The chapter {doc}`own_model`
# measures models written the ecosystem's way (SDPA attention, Hugging Face GPT-2).
#
# ## Gauss-Newton shortcut: a few backward passes when the rest of the network is piecewise linear
#
# With $f$ the network output, $H_f = \partial^2 L/\partial f^2$ and $J = \partial f/\partial z$,
# the $z$-Hessian is $J^\top H_f J + R$ with the residual
# $R = \sum_m c_m\, \partial^2 f_m/\partial z^2$, $c = \partial L/\partial f$ {cite}`martens2020`.
# Downstream of a layer that only meets Linear, convolution, ReLU and max-pooling, $R = 0$ and the
# Hessian *is* the generalized Gauss-Newton matrix. Factoring each sample's loss Hessian
# $H_f[n] = \sum_k \lambda_{nk} u_{nk} u_{nk}^\top$ gives, with $V_k = J^\top (\sqrt{|\lambda_{\cdot k}|}\, u_{\cdot k})$,
#
# $$\frac{\partial^2 L}{\partial W_{ij}^2} = \sum_{n,k} \operatorname{sign}(\lambda_{nk}) \Big(\sum_t A_{ntj} V_k[n,t,i]\Big)^2 ,$$
#
# so $C$ first-order backward passes ($C$ = output size per sample, all samples at once) give the
# diagonal of every such layer -- the construction of BackPACK's `DiagGGNExact`
# {cite}`dangel2020backpack`, here for any module graph. Nothing is assumed: either every autograd
# node between the layer and $f$ is of a kind whose second derivative is an exact zero (read off
# the graph), or $R u$ (the HVP of $\langle c, f(z)\rangle$ with $c$ fixed) must be exactly zero
# at a Gaussian $u$; and bit tests verify that neither the loss nor the network couples samples. The shortcut is used for the
# layers that pass, when it is cheaper; the table below says which path each model took.
#
# ## The sampled estimate, at the study size
#
# At a size where the paper's claim can be tested (the study model: word-level Penn Treebank,
# 2,000 words, $T=32$, $d=64$), $T \ge J$ for most layers and the exact diagonal costs what brute
# force costs. `method="sampled"` spends a few exact entries per tensor instead, chosen so that both
# parts of the ratio are accurate:
#
# - tensors whose exact diagonal costs at most `exact_below` products (biases, LayerNorm: $K$) are
#   computed whole, and so are layers whose positions are independent when their $K$ products are
#   affordable (`proxy_below`, 1,024 units);
# - two proxies rank every entry, used only to *choose* coordinates, never as values: the row sums
#   of each unit's block of the $z$-Hessian ($K$ products $\mathbf 1\otimes e_i$, which also give the
#   bias diagonal exactly), $p_{ij} = \sum_{n,t} |R_{nti}|\, A_{ntj}^2$, and the free per-position
#   squared gradients $q_{ij} = \sum_{n,t} g_{nti}^2\, A_{ntj}^2$ ($g = \partial L/\partial z$); a layer
#   wider than `proxy_below` (a large vocabulary's output layer) is ranked by $q$ alone;
# - **maximum**: the `n_candidates` entries of largest $p$ and those of largest $q$ are computed
#   exactly (on the study model after 750 Adam iterations, the token embedding's largest entry is
#   26th by $p$ and 7th by $q$); the largest
#   verified entry is a hard lower bound and the point estimate. An upper bound comes from
#   $|H_{ij}| \le \sum_n \|B_n\|_2 \|a_{nj}\|^2$, with $\|B_n\|_2$ (sample $n$'s block of the
#   $z$-Hessian) bounded by Lanczos on $B_n^2$, all samples in lockstep (Kuczyński–Woźniakowski, at
#   probability $\alpha/2$ shared by all tensors): valid, but a norm bound;
# - **median**: $m$ = `n_samples` uniform draws; the order statistics $x_{(l)}, x_{(u)}$ with
#   $P(\mathrm{Bin}(m,\tfrac12) < l),\ P(\mathrm{Bin}(m,\tfrac12)\ge u) \le \alpha/4$ bracket it
#   (distribution-free), and the point estimate is *post-stratified*: the proxy's quantiles cut the
#   tensor into cells of known size, and the median of $\sum_s w_s \hat F_s$ removes the sampling
#   noise the proxy explains.
#
# A union bound gives $P(R_\mathrm{med}\in[\text{lower},\text{upper}]) \ge 1-\alpha$. Sample
# sizes that cannot deliver the confidence asked for are refused. The estimate's error is not
# assumed: it is measured against exact on the study model below.
#
# ## Spectra
#
# `top_eigenvalues` runs Lanczos (ARPACK `eigsh`) on the HVP operator, one HVP per step;
# `hessian_trace` is Hutchinson's estimator ($m$ HVPs), `spectral_density` stochastic Lanczos
# quadrature ($n_\text{runs}\, m$ HVPs).

# %% [markdown]
# ## Exactness, checked live (float64)
#
# Each model of `rmed_core.hessian.testing` against the diagonal of the dense Hessian from
# `torch.autograd.functional.hessian`. The error is relative to each tensor's largest entry
# (floored at $10^{-9}$ of the model's largest, for blocks that are zero in theory).

# %% tags=["hide-input"]
cases = ["mlp_relu", "mlp_tanh", "cnn_max", "transformer", "transformer_tied", "tokenwise", "shared",
         "batchnorm_train"]
if scale == "ci":
    cases = ["mlp_relu", "cnn_max", "transformer_tied", "batchnorm_train"]
rows = []
for case in cases:
    model, loss, batch = make_case(case, torch.float64)
    ref = reference_diagonal(model, loss, batch)
    info: dict = {}
    diag = hessian_diagonal(model, loss, batch, method="exact", info=info)
    rows.append(dict(model=case, parameters=sum(p.numel() for p in model.parameters()),
                     max_rel_error=max_rel_error(diag, ref), products=info["n_hvp"],
                     paths=", ".join(sorted(set(info["paths"].values()))),
                     brute_force_for=", ".join(info.get("fallback", {})) or "-"))
exactness = pd.DataFrame(rows)
glue_number("worst_exact_error", exactness.max_rel_error.max())
exactness

# %% tags=["hide-input"]
assert (exactness.max_rel_error <= 1e-6).all(), exactness

# %% [markdown]
# The largest relative error over these models is {glue:text}`worst_exact_error:.1e`.
#
# ## R_med of a small transformer, exact and sampled
#
# Every tensor sampled (`exact_below=0`), 40 draws each; undefined tensors (zero in theory, see
# the statistic chapter) are reported as such by both methods.

# %%
model, loss, batch = make_case("transformer_tied" if scale == "ci" else "transformer", torch.float64)
exact = rmed_per_layer(model, loss, batch)
sampled = rmed_per_layer(model, loss, batch, method="sampled", seed=seed, n_samples=40, exact_below=0)
both = exact[["layer", "numel", "r_med", "undefined"]].merge(sampled[["layer", "r_med", "lower", "upper"]],
                                                             on="layer", suffixes=("_exact", "_sampled"))
defined = both[both.undefined == ""]
covered = float(((defined.lower <= defined.r_med_exact * (1 + 1e-9))
                 & (defined.r_med_exact <= defined.upper * (1 + 1e-9))).mean())
glue_number("sampled_coverage", 100 * covered)
assert (sampled.undefined != "").sum() == (exact.undefined != "").sum()
both.head(10)

# %% [markdown]
# The 95% intervals cover the exact value for {glue:text}`sampled_coverage:.0f`% of the defined
# tensors here.
#
# ## Measured costs
#
# Tables written by the benchmark scripts (`benchmarks/results/`, each with its command, machine,
# thread count and load average in the `.md` beside the `.csv`). A table that has not been
# measured is marked so; no number here is typed in by hand.

# %% tags=["hide-input"]
tables = read_tables()
for name, what in BENCHMARKS.items():
    print(f"## {what}")
    print(tables[name].to_string(index=False) if name in tables else "not measured", "\n")

# %% [markdown]
# ## At the study size
#
# The study model (`rmed_core.tasks.STUDY_SCALES["study"]`: word-level Penn Treebank, 2,000 words,
# $T=32$, $d=64$, 2 blocks, 4 heads) after Adam training (the checkpoints measured are named in the
# header of `benchmarks/results/study_accuracy.md`), on its 512-token Hessian batch: the exact
# method and the sampled estimate side by side in one process (`benchmarks/bench_study.py`).

# %% tags=["hide-input"]
study = glue_values(study_accuracy_summary(tables.get("study_accuracy")))
batch = glue_values(study_batch_summary(tables.get("study_batch")))

# %% [markdown]
# Status of this measurement: {glue:text}`study_status`. On the sampled tensors of the measured
# checkpoints the estimate's median relative error is
# {glue:text}`study_median_err:.1f`% and its worst {glue:text}`study_worst_err:.1f`% (worst of the
# maximum part {glue:text}`study_max_part_worst:.1f`%, of the median part
# {glue:text}`study_median_part_worst:.1f`%: {glue:text}`study_which_part`). The probe spent
# {glue:text}`study_product_ratio:.0f`% of the exact method's products and took
# {glue:text}`study_time_ratio:.0f`% of its time ({glue:text}`study_sampled_seconds:.0f` s against
# {glue:text}`study_exact_minutes:.0f` minutes; the product ratio is the machine-independent one,
# see the table's header for the load each was timed under).
# The exact method itself spent {glue:text}`study_exact_products` Hessian-vector products on the
# whole model, where brute force needs one per parameter ({glue:text}`study_brute_products`): a
# product-count ratio of {glue:text}`study_brute_ratio:.1f`. It comes from the token embedding and
# the output layer (vocabulary $\times$ $d$ entries each, for about one product per vocabulary
# row) and from the last block's layers whose outputs reach the loss position by position
# (queries, attention projection, MLP), which cost $d_\mathrm{out}$ products; the first block's
# layers and the last block's keys and values, where a position reaches every later one, gain only
# $d_\mathrm{in}/\min(T, d_\mathrm{in})$ (2 for $T=32$, $d_\mathrm{in}=64$).
# The intervals cover the exact value for {glue:text}`study_coverage:.0f`% of the tensors but are
# {glue:text}`study_width:.0f` times wide (median of upper/lower): their upper end is a norm bound
# on the largest entry, valid and loose -- these intervals certify, they do not decide. What the
# experiments rely on is the point estimate, whose error is the measured one above.
#
# **The Hessian batch.** R_med is a property of the loss on one batch. On the checkpoint after 750
# Adam iterations, against the 512 tokens the probes use, the median over the
# {glue:text}`batch_defined` defined tensors of $|\log(R_\mathrm{med}^{(k)}/R_\mathrm{med}^{(512)})|$
# is {glue:text}`batch_move_256:.2f` at 256 tokens, {glue:text}`batch_move_1024:.2f` at 1,024 and
# {glue:text}`batch_move_2048:.2f` at 2,048 (0.1 is a 10% change; `nan` while not measured). The
# largest moves are {glue:text}`batch_max_256:.2f` at 256 ({glue:text}`batch_maxtensor_256`),
# {glue:text}`batch_max_1024:.2f` at 1,024 ({glue:text}`batch_maxtensor_1024`) and
# {glue:text}`batch_max_2048:.2f` at 2,048 ({glue:text}`batch_maxtensor_2048`); the number of
# tensors moving by more than 25% is {glue:text}`batch_over25_256`, {glue:text}`batch_over25_1024`
# and {glue:text}`batch_over25_2048`. Each value is itself the sampled estimate, so a move below
# its error against exact at 512 tokens (the noise floor in the table's header) is not the
# batch's doing. By that measure R_med {glue:text}`batch_settled`. A probe's cost grows with the
# batch: {glue:text}`batch_seconds_512:.0f` s at 512
# tokens and {glue:text}`batch_seconds_2048:.0f` s at 2,048 on one thread.
#
# The study's batch, 512 training tokens (16 windows of 32, drawn once per seed, the same for
# every optimizer and step), is this project's choice: the smallest size at which the estimate was measured against exact,
# at a quarter of the cost per product of 2,048, with two probes in each of ten runs to pay for. The
# comparison the study makes is between optimizers on *the same* batch: a factor the batch puts
# on both optimizers' values alike would cancel in their ratio. The table measures one
# optimizer's values only, so it bounds how far a single tensor's R_med moves with the batch, not
# how far the ratio does. It is training text, because R_med describes the
# geometry the optimizer is moving through, which is the training loss's.
#
# ## On both optimizers' checkpoints
#
# The study's verdict compares SGD-M's R_med with Adam's tensor by tensor, so an estimate that errs
# differently on the two optimizers' checkpoints could fake or hide the claim. The probe is
# therefore measured on four checkpoints of study seed 0 -- Adam (lr $10^{-3}$) and SGD-M (lr 0.1,
# momentum 0.9) after 750 and 1,250 iterations -- against the exact diagonal of each, computed once
# tensor by tensor and cached (`benchmarks/bench_probe.py exact`), with three estimate seeds each
# (`... accuracy`, `... summary`; commands and load in `benchmarks/results/probe_accuracy.md`).
# Status: {glue:text}`probe_status`.
#
# Over the sampled tensors of the four checkpoints the median error of R_med is
# {glue:text}`probe_median_err:.1f`% and the worst {glue:text}`probe_worst_err:.1f`%; the worst of
# the maximum part is {glue:text}`probe_max_part_worst:.1f`%, of the median part
# {glue:text}`probe_median_part_worst:.1f`%. The mean log-error, a bias, is
# {glue:text}`probe_bias_adam:+.3f` on Adam's checkpoints and {glue:text}`probe_bias_sgdm:+.3f` on
# SGD-M's. What the verdict reads is the per-tensor log-ratio
# $\log(R^{\mathrm{SGDM}}_{\mathrm{med}}/R^{\mathrm{Adam}}_{\mathrm{med}})$ and its mean over
# tensors: the estimate puts an error of {glue:text}`probe_ratio_err_median:.3f` (median) and
# {glue:text}`probe_ratio_err_worst:.3f` (worst) on a tensor's log-ratio, and at most
# {glue:text}`probe_mean_ratio_err_worst:.3f` on its mean over tensors ({doc}`fig3` sets this beside
# the effect its verdict reads). The intervals hold the exact value for
# {glue:text}`probe_coverage:.0f`% of the sampled tensors, with a median width (upper/lower) of
# {glue:text}`probe_width:.0f`: they certify, they do not decide.
#
# The errors that remain are in both parts: the proxies' candidates miss the largest entry of some
# tensors, and 192 post-stratified draws leave the median of some tensors off by up to
# {glue:text}`probe_median_part_worst:.0f`% (per tensor: `probe_accuracy_tensors.csv`). With the
# sampled Gauss-Newton ranking added (`gauss_newton_draws=32`: 32 label draws, one
# batched backward pass for every tensor, and its top entries verified; configuration
# `gauss-newton`, {glue:text}`probe_gn_runs:.0f` runs, one estimate seed per checkpoint), the worst
# error of R_med is {glue:text}`probe_gn_worst_err:.1f`% and the maximum part's worst
# {glue:text}`probe_gn_max_part_worst:.1f`% (median error {glue:text}`probe_gn_median_err:.1f`%, the
# verdict statistic's error at most {glue:text}`probe_gn_mean_ratio_err_worst:.3f`). The uniform
# draws are the same, so the maximum found can only grow; the defaults stay as they are until a
# configuration meets every accuracy goal above on all four checkpoints.
#
# **The configurations measured, judged by the goals' rules.** Beside the defaults and
# `gauss-newton`: `gauss-newton+activation` (the Gauss-Newton ranking with the activation's own
# curvature term added for the layers that feed a GELU, three estimate seeds a checkpoint) and
# `lean`, which spends fewer products -- no row-sum proxy (its $K$ products a layer; the
# Gauss-Newton ranking with the activation term stratifies instead, and a sampled layer's bias is
# sampled like its weight), 64 uniform draws instead of 192, 8 candidates from each proxy's top
# instead of 16 (keyword arguments in `benchmarks/results/probe_accuracy.md`). The second table
# below judges each by the two accuracy goals (R_med's and its maximum part's errors on all four
# checkpoints; the error of the verdict's statistic): {glue:text}`probe_configs_sentence`.

# %% tags=["hide-input"]
probe = glue_values(probe_accuracy_summary(tables.get("probe_accuracy")))
proxies_file = results_dir() / "probe_proxies_tensors.csv"
per_tensor_proxies = pd.read_csv(proxies_file) if proxies_file.is_file() else None
prox = glue_values(probe_proxies_summary(per_tensor_proxies))
glue_values(probe_activation_summary(tables.get("probe_activation")))
if "probe_activation" in tables:  # the Gauss-Newton proxy with the activation's own curvature (text below)
    display(tables["probe_activation"].round(3))
configs = probe_configs(tables.get("probe_accuracy"))
glue_values({"probe_configs_sentence": probe_configs_sentence(configs)})
if "probe_accuracy" in tables:  # the benchmark's table, the columns the text reads
    display(tables["probe_accuracy"].filter(["config", "checkpoint", "runs", "median_err", "worst_err", "max_part_worst",
                                             "median_part_worst", "mean_log_err", "log_ratio_err_median",
                                             "log_ratio_err_worst", "mean_log_ratio_err_worst", "coverage",
                                             "width_median", "products", "seconds"]).round(3))
    display(configs.round(3))  # each configuration against the accuracy goals (text above)
else:
    print("probe_accuracy: not measured")

# %% [markdown]
# **Where the products go, and why far fewer will not do here.** The probe spends most of its
# products on exact entries: 192 uniform draws per sampled tensor for the median, and the
# proxies' top candidates for the maximum. Fewer draws need a proxy that predicts the entries well
# enough for a regression (or ratio) estimator: from $m$ exact entries its median has a standard
# error of about $1.25\,\tau/\sqrt{m}$, $\tau$ the residual standard deviation of $\log|h|$ on
# the log proxy. Measured on every tensor of the four checkpoints (table `probe_proxies`,
# {glue:text}`proxies_status`), the median $\tau$ is {glue:text}`proxies_tau_p:.2f` for the row
# sums (Spearman {glue:text}`proxies_rho_p:.2f`, $K$ products a layer),
# {glue:text}`proxies_tau_q:.2f` for the squared per-position gradients (free) and
# {glue:text}`proxies_tau_gauss_newton:.2f` for the sampled Gauss-Newton diagonal (one batched
# backward pass for every tensor). A 3% standard error at the median tensor's $\tau$ then takes
# {glue:text}`proxies_m_p` exact entries with the row sums, {glue:text}`proxies_m_q` with the
# gradients and {glue:text}`proxies_m_gauss_newton` with the Gauss-Newton diagonal, and at the 90th
# percentile tensor {glue:text}`proxies_m90_p`, {glue:text}`proxies_m90_q` and
# {glue:text}`proxies_m90_gauss_newton`: no cheaper probe of every tensor keeps the median within 3%
# with these proxies. The Gauss-Newton diagonal is close to exact where the network beyond a tensor
# is nearly linear in it (LayerNorm weights and biases, attention values and projections) and far
# from it for the embeddings, the queries and keys and the MLP's first layer, whose curvature
# passes through LayerNorm, softmax and the activation (per tensor: `probe_proxies_tensors.csv`).
# For the output layer it *is* the Hessian in expectation, but 32 label draws leave a rare word's
# entries noisy. It is used, opt-in (`gauss_newton_draws`), to find more of the maxima.
#
# **The MLP's first layer: its activation's own curvature.** What the Gauss-Newton matrix leaves
# out of a layer's Hessian is the curvature of the nonlinearities after it, and the nearest one is
# exact and nearly free: for a layer that feeds an elementwise activation $y = \sigma(z)$, the term
# $r_{ij} = \sum_{n,t} \frac{\partial L}{\partial y_{nti}}\,\sigma''(z_{nti})\,a_{ntj}^2$ costs
# one backward pass for every such layer (`rmed_core.hessian._activation`; tested exact where the
# activation is the only nonlinearity). With `gauss_newton_draws > 0` it is added to the
# Gauss-Newton diagonal of those layers (`activation_curvature=True`, the default). On the sampled
# tensors it reaches ({glue:text}`activation_tensors:.0f` tensor-checkpoints, table
# `probe_activation`, {glue:text}`activation_status`; the same checkpoints as the accuracy tables:
# {glue:text}`activation_checkpoints_match`), the Spearman correlation with $|h|$ is
# {glue:text}`activation_spearman_gn:.2f` for the Gauss-Newton diagonal alone,
# {glue:text}`activation_spearman_act:.2f` for the activation term alone and
# {glue:text}`activation_spearman_gn_act:.2f` for their sum (worst
# {glue:text}`activation_spearman_worst_gn:.2f`, {glue:text}`activation_spearman_worst_act:.2f`,
# {glue:text}`activation_spearman_worst_gn_act:.2f`); $\tau$ is {glue:text}`activation_tau_gn:.2f`,
# {glue:text}`activation_tau_act:.2f` and {glue:text}`activation_tau_gn_act:.2f`; and the largest
# of each proxy's top 8 entries is at worst {glue:text}`activation_top8_worst_gn:.2f`,
# {glue:text}`activation_top8_worst_act:.2f` and {glue:text}`activation_top8_worst_gn_act:.2f` of
# the maximum. The accuracy of the probe with it (configuration `gauss-newton+activation` of
# `bench_probe.py`) is measured by the same benchmark as the rows above once it has run.
#
# ## Goals met and missed
#
# Read from the tables above (a goal whose table is missing is "not measured").

# %% tags=["hide-input"]
goals = goal_table(tables)
goals

# %% tags=["remove-input"]
show_provenance("computing_rmed", {"scale": scale, "seed": seed},
                {**provenance(torch.device("cpu"), seed=seed, wall_time_s=round(time.perf_counter() - started, 1)),
                 "benchmark tables": ", ".join(sorted(tables)) or "none"})
