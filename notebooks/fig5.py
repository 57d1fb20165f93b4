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
# (chapter-fig5)=
# # Beyond the paper: top eigenvalue, blockwise spectra, other optimizers
#
# Three measurements the paper does not report (as far as its abstract and the papers quoting it
# tell), made on the same runs:
#
# 1. the **largest Hessian eigenvalue** along both trajectories (Lanczos, `top_eigenvalues`), the
#    global curvature that R_med is contrasted with;
# 2. the **blockwise spectra** at the end of training — the eigenvalue density of each parameter
#    tensor's own Hessian block, estimated by stochastic Lanczos quadrature
#    ({cite:t}`ghorbani2019investigation`) — whose differences across blocks
#    {cite:t}`zhang2024transformers` call *block heterogeneity*;
# 3. **R_med under the other optimizers of the registry** (AdamW, RMSprop, signum, AdaGrad, plain
#    SGD), to see whether the small R_med goes with adaptivity in general
#    ({cite:t}`zhao2024deconstructing` find Adam, signum and relatives alike on language models).
#
# **Scale.** This chapter runs at `book` scale, not on the study model of {doc}`fig2` and
# {doc}`fig3`: there each further optimizer would need its own learning-rate grid and five probed
# seeds (each probe's time is in the study's `bundles/study/probe.csv`), and the study's budget went
# to the two optimizers the claim is about.
# `-p scale study` runs it there (the extra optimizers at `lr_others`, untuned), at the cost of
# training and probing each optimizer at that size.

# %% tags=["parameters"]
from typing import Optional, Union

task: str = "ptb_lm"
lr: Union[float, str, None] = None  # SGD-M and Adam. None: tuned values; a number for both; or "sgdm:0.1,adam:0.01"
seed: int = 0
others: str = "adamw,rmsprop,signum"  # comma-separated extra optimizers (each needs a tuned or given lr)
lr_others: Optional[float] = 0.003  # learning rate of the extra optimizers (None: their tuned values)
steps: Optional[int] = None  # None: the scale's default
scale: str = "book"  # ci | book | study | paper (see "Scale" above)

# %% tags=["hide-input"]
import numpy as np

from rmed_core.book.plots import KIND_COLORS, band_plot, figure_grid
from rmed_core.book.report import glue_figure, glue_number, show_provenance
from rmed_core.hessian import blockwise_spectra
from rmed_core.kinds import tensor_kind
from rmed_core.runs.trainer import final_model
from rmed_core.study.experiments import learning_rates, run_grid
from rmed_core.tasks import get_task

params = dict(task=task, lr=lr, seed=seed, others=others, lr_others=lr_others, steps=steps, scale=scale)
extra = {"steps": steps} if steps else {}
main = run_grid([task], ["sgdm", "adam"], [seed], scale=scale, lr=learning_rates(lr, ["sgdm", "adam"]), **extra)
other_opts = [o.strip() for o in others.split(",") if o.strip()]
more = run_grid([task], other_opts, [seed], scale=scale,
                lr={o: lr_others for o in other_opts} if lr_others else None, **extra)
for r in main.diverged + more.diverged:
    print(f"DIVERGED: {r.config.opt} (lr {r.config.lr:g}): {r.provenance.get('reason')}")

# %% [markdown]
# ## The largest eigenvalue along the trajectories

# %% tags=["hide-input"]
fig, axes = figure_grid(1, width=5.0, height=3.2)
eig = main.eig[main.eig["rank"] == 0].assign(eigenvalue=lambda d: d.eigenvalue.abs())
band_plot(axes[0], eig, "step", "eigenvalue", logy=True, marker="o", hue_order=["sgdm", "adam"])
axes[0].set_ylabel(r"$|\lambda_{\max}|$ of the Hessian (fixed batch)")
axes[0].legend()
glue_figure("fig5_top_eig", fig)
last_eig = eig[eig.step == eig.step.max()].set_index("opt").eigenvalue
for o in ("sgdm", "adam"):
    glue_number(f"fig5_lmax_{o}", last_eig.get(o, np.nan))

# %% [markdown]
# ```{glue:figure} fig5_top_eig
# :name: fig-fig5-top-eig
#
# The largest-magnitude Hessian eigenvalue on the fixed batch along the trajectories of SGD with
# momentum and Adam (seed of the parameters).
# ```
#
# At the last probe $|\lambda_{\max}|$ is {glue:text}`fig5_lmax_sgdm:.3g` under SGD-M and
# {glue:text}`fig5_lmax_adam:.3g` under Adam.

# %% tags=["hide-input"]
show_provenance("fig5", params, main.provenance)

# %% [markdown]
# ## Blockwise spectra at the end of training

# %% tags=["hide-input"]
spectra = {}
for r in main.results:
    model, batch = final_model(r)
    spectra[r.config.opt] = blockwise_spectra(model, get_task(task).loss_fn, batch, seed=seed)
fig, axes = figure_grid(2)
for ax, opt in zip(axes, ["sgdm", "adam"]):
    span = max(max(abs(s.nodes).max() for s in spectra[o].values()) for o in spectra)
    grid_x = np.linspace(-span, span, 400)
    seen = set()
    for name, dens in spectra[opt].items():
        group = tensor_kind(name)
        ax.plot(grid_x, dens.density(grid_x, sigma=span / 100), color=KIND_COLORS[group], alpha=0.6,
                linewidth=0.8, label=None if group in seen else group)
        seen.add(group)
    ax.set_yscale("log")
    ax.set_ylim(1e-4, None)
    ax.set_xlabel("eigenvalue")
    ax.set_title(f"{opt}: one curve per parameter tensor")
axes[0].set_ylabel("density (SLQ)")
axes[1].legend(fontsize=7)
glue_figure("fig5_blockwise", fig)
spread = {o: float(np.std([np.log10(abs(s.nodes).max() + 1e-30) for s in spectra[o].values()])) for o in spectra}
for o, v in spread.items():
    glue_number(f"fig5_spread_{o}", v)

# %% [markdown]
# ```{glue:figure} fig5_blockwise
# :name: fig-fig5-blockwise
#
# The eigenvalue density of each parameter tensor's Hessian block at the end of training (one
# Lanczos run of 40 steps per block), coloured by the kind of layer.
# ```
#
# The spread of the blocks' largest eigenvalues (standard deviation of $\log_{10}$ over tensors)
# is {glue:text}`fig5_spread_sgdm:.2f` at the end of SGD-M's run and
# {glue:text}`fig5_spread_adam:.2f` at the end of Adam's.

# %% tags=["hide-input"]
show_provenance("fig5", params, main.provenance)

# %% [markdown]
# ## R_med under other optimizers

# %% tags=["hide-input"]
allr = __import__("pandas").concat([main.rmed, more.rmed], ignore_index=True)
final = allr[allr.step == allr.step.max()].groupby("opt").r_med.median().sort_values()
fig, axes = figure_grid(1, width=5.0, height=3.2)
per_step = allr.groupby(["opt", "step"]).r_med.median().reset_index().assign(seed=seed)
band_plot(axes[0], per_step, "step", "r_med", logy=True, marker="o", band="none",
          hue_order=["sgdm", "adam", *other_opts])
axes[0].set_ylabel(r"median over tensors of $R_\mathrm{med}$")
axes[0].legend(fontsize=7, ncols=2)
glue_figure("fig5_optimizers", fig)
final.round(2).rename("median R_med at the last probe").to_frame()

# %% [markdown]
# ```{glue:figure} fig5_optimizers
# :name: fig-fig5-optimizers
#
# The median over parameter tensors of R_med along the trajectory of each optimizer.
# ```

# %% tags=["hide-input"]
show_provenance("fig5", params, main.provenance + more.provenance)

# %% tags=["hide-input"]
assert set(spectra) == {"sgdm", "adam"} and all(len(s) > 0 for s in spectra.values())
