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
# (chapter-fig2)=
# # R_med along the trajectory
#
# **The paper's claim** (abstract): adaptive methods such as Adam bias the trajectory towards
# regions where $R^{\mathrm{Adam}}_{\mathrm{med}}$ is small; SGD (with momentum) towards regions
# where $R^{\mathrm{SGD}}_{\mathrm{med}}$ is comparatively large — on language models.
#
# This chapter trains the task's transformer with `opt` and measures the exact Hessian diagonal of
# every parameter tensor on a fixed batch at regular steps ({doc}`computing_rmed`), then puts
# the final R_med of each layer beside that of the other optimizer of the comparison
# (SGD with momentum for Adam, Adam otherwise), trained from the same initialisation with the same
# data order. Task, model sizes and learning rates are this project's choices: the paper's are not
# known ({ref}`chapter-statistic`).

# %% tags=["parameters"]
from typing import Optional

opt: str = "adam"  # the optimizer whose trajectory is shown (any name of the registry)
task: str = "ptb_lm"  # ptb_lm (Penn Treebank language model), polarity_cls, mnist_cnn, fashion_cnn
seed: int = 0
lr: Optional[float] = None  # None: the task's tuned learning rate for `opt`
steps: Optional[int] = None  # None: the scale's default
scale: str = "book"  # ci | book | paper

# %% tags=["hide-input"]
from rmed_core.experiments import run_grid
from rmed_core.plots import band_plot, figure_grid, layer_lines
from rmed_core.report import glue_figure, glue_number, glue_text, show_provenance
from rmed_core.tasks import get_task

params = dict(opt=opt, task=task, seed=seed, lr=lr, steps=steps, scale=scale)
other = "sgdm" if opt != "sgdm" else "adam"
grid = run_grid([task], [opt, other], [seed], scale=scale, lr={opt: lr} if lr else None,
                **({"steps": steps} if steps else {}))
run = next(r for r in grid.results if r.config.opt == opt)
print(f"{get_task(task).description}; {opt} lr={run.config.lr:g}, {other} lr="
      f"{next(r for r in grid.results if r.config.opt == other).config.lr:g}; "
      f"{run.config.steps} steps, batch {run.config.batch_size}, Hessian batch {run.config.hessian_batch}, "
      f"method {run.config.probe_method}")
for r in grid.diverged:
    print(f"DIVERGED: {r.config.opt} (lr {r.config.lr:g}): {r.provenance.get('reason')}")

# %% tags=["hide-input"]
mine = grid.rmed[grid.rmed.opt == opt]
fig, axes = figure_grid(2, width=5.2, height=3.8)
layer_lines(axes[0], mine)
axes[0].set_ylabel(r"$R_\mathrm{med}$ (log)")
axes[0].set_title(f"{opt}: every parameter tensor")
axes[0].legend(fontsize=7, ncols=2)
band_plot(axes[1], grid.loss.assign(smooth=grid.loss.groupby("opt").loss.transform(
    lambda s: s.rolling(20, min_periods=1).mean())), "step", "smooth", logy=True, hue_order=[opt, other])
axes[1].set_ylabel("training loss (20-step mean)")
axes[1].legend()
fig.suptitle(f"{task}, {scale} scale, seed {seed}")
glue_figure("fig2_trajectory", fig)

last = mine[mine.step == mine.step.max()]
for _, row in last[last.r_med.isna()].iterrows():
    print(f"R_med undefined, left out: {row.layer} ({row.undefined})")
rmed_median_final = glue_number("rmed_median_final", last.r_med.median())
loss_final = glue_number("loss_final", run.loss.loss.tail(max(1, len(run.loss) // 10)).mean())
print(f"final step {int(last.step.max())}: median over {len(last)} layers of R_med = {rmed_median_final:.2f}; "
      f"training loss (mean of the last 10% of steps) = {loss_final:.3f}")

# %% [markdown]
# ```{glue:figure} fig2_trajectory
# :name: fig-fig2-trajectory
#
# Left: R_med of every parameter tensor along the trajectory of `opt`, coloured by the kind of
# layer. Right: the training loss of both optimizers.
# ```
#
# The key projection's bias has a Hessian that is zero in theory: adding a vector $b$ to every key
# adds $q \cdot b$ to all of a query's scores, which the softmax ignores. What autograd returns for
# it is rounding noise, so its R_med is undefined (the rule of {ref}`undefined-rmed`) and it is
# left out of the medians.

# %% tags=["hide-input"]
show_provenance("fig2", params, grid.provenance)

# %% [markdown]
# ## Layer by layer, against the other optimizer

# %% tags=["hide-input"]
final = grid.rmed[grid.rmed.step == grid.rmed.step.max()].pivot_table(index="layer", columns="opt", values="r_med",
                                                                      sort=False)
sgd_larger = int((final["sgdm"] > final["adam"]).sum()) if {"sgdm", "adam"} <= set(final.columns) else None
fig, axes = figure_grid(1, width=5.0, height=4.2)
ax = axes[0]
ax.scatter(final[other], final[opt], s=14)
lim = [min(final.min().min(), 1) * 0.8, final.max().max() * 1.25]
ax.plot(lim, lim, color="k", linewidth=0.8, linestyle=":")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel(f"final R_med under {other}")
ax.set_ylabel(f"final R_med under {opt}")
ax.set_title("one point per parameter tensor")
glue_figure("fig2_scatter", fig)
if sgd_larger is not None:
    glue_number("fig2_sgd_larger", sgd_larger)
    n_defined = int(final[["sgdm", "adam"]].notna().all(axis=1).sum())
    glue_number("fig2_layers", n_defined)
    glue_text("fig2_verdict", "reproduced" if sgd_larger > 0.5 * n_defined else "not reproduced")
final.assign(ratio_sgdm_over_adam=final.get("sgdm") / final.get("adam")).round(2)

# %% [markdown]
# ```{glue:figure} fig2_scatter
# :name: fig-fig2-scatter
#
# Final R_med of each parameter tensor under the two optimizers (dotted: equal). Points below the
# diagonal are layers where `opt` ends with the smaller R_med.
# ```
#
# **Verdict for this run: {glue:text}`fig2_verdict`** (the claim counts as reproduced here when
# SGD with momentum ends with the larger R_med in most tensors). At the last probe it does in
# {glue:text}`fig2_sgd_larger:.0f` of {glue:text}`fig2_layers:.0f` parameter tensors (those with a
# defined R_med under both; the run of the parameters above — {doc}`fig3` repeats this over seeds).
#
# **When the verdict is *not reproduced*, what would test the claim further.** The book-scale
# model is a character-level transformer with $d=16$ trained for a few hundred steps, chosen so
# that every probe is an *exact* diagonal on a 2-core CPU; the paper's model sizes are not known,
# but its table reports iterations 750 and 1250, beyond the book's runs. The next tests,
# in order of cost: more seeds ({doc}`fig3`), longer training at the same size (`-p steps 3000`),
# the word-level model at `-p scale paper` on a GPU (no learning rate is tuned at that scale: pass
# one with `-p lr`), and the learning-rate sensitivity of the
# ratio (a sweep over the grid, {doc}`../sweeps`): a gap that appears only at one learning rate is
# a statement about tuning, not about the optimizer.

# %% tags=["hide-input"]
show_provenance("fig2", params, grid.provenance)

# %% tags=["hide-input"]
import math
assert len(mine.layer.unique()) == len(list(get_task(task).model(scale).parameters())), "every tensor probed"
undefined = last[last.r_med.isna()]
assert undefined.undefined.notna().all() and (undefined.undefined != "").all(), "every undefined R_med has a reason"
assert (last.dropna(subset=["r_med"]).undefined.fillna("") == "").all(), "a defined R_med has no reason"
assert run.diverged or (last.r_med.dropna() >= 1).all(), "R_med is a max/median, >= 1"
