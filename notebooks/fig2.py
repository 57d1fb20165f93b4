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
# # R_med of every tensor, under each optimizer
#
# **The paper's claim** (abstract): adaptive methods such as Adam bias the trajectory towards
# regions where $R^{\mathrm{Adam}}_{\mathrm{med}}$ is small; SGD (with momentum) towards regions
# where $R^{\mathrm{SGD}}_{\mathrm{med}}$ is comparatively large — on language models.
#
# This chapter shows the measurement itself: R_med of every parameter tensor at the probes
# standing for the paper's iterations 750 and 1250, under each optimizer, over the seeds of the
# study. It describes; the verdict on the claim, with its interval and its rule's error rates, is
# in {doc}`fig3`.
#
# **What was run.** {glue:text}`fig2_setup`. The learning rates were tuned on this task and scale
# ({doc}`fig1`). R_med is computed on a fixed batch drawn once per seed from the training set, the
# same for both optimizers and every probe; at the study scale it is 16 training sequences (512
# tokens), the size at which the sampled estimate's cost and accuracy are measured against the
# exact diagonal in {doc}`computing_rmed`. Task, model sizes and learning rates are this project's
# choices: the paper's are not known ({ref}`chapter-statistic`). {glue:text}`fig2_probe`.

# %% tags=["parameters"]
from typing import Optional, Union

opt: str = "both"  # both (sgdm and adam), or one optimizer shown beside its partner (sgdm for any other, adam for sgdm)
task: str = "ptb_lm"  # ptb_lm (Penn Treebank language model); polarity_cls at ci/book; mnist_cnn (see the control chapter)
seed: int = 0  # first seed; the bundle (or the scale) sets how many
lr: Union[float, str, None] = None  # None: the bundle's rates (else the tuned ones); a number for both; or "sgdm:0.3,adam:0.001"
steps: Optional[int] = None  # None: the study's (or the scale's) iterations
scale: str = "study"  # ci | book | study | paper; a results bundle of this name is read when it holds the runs

# %% tags=["hide-input"]
from rmed_core.book.plots import figure_grid, opt_scatter, rmed_by_tensor_plot
from rmed_core.book.report import glue_figure, glue_number, glue_text, show_provenance
from rmed_core.study.experiments import describe_grid, setup_sentence, study_grid
from rmed_core.study.goals import probe_description
from rmed_core.study.published import published_steps
from rmed_core.study.units import rmed_by_tensor
from rmed_core.tasks import get_task

params = dict(opt=opt, task=task, seed=seed, lr=lr, steps=steps, scale=scale)
opts = ["sgdm", "adam"] if opt == "both" else [opt, "sgdm" if opt != "sgdm" else "adam"]
shown = opts if opt == "both" else [opt]
grid = study_grid(task, opts, scale=scale, lr=lr, seed=seed, steps=steps)
for r in grid.diverged:
    print(f"DIVERGED: {r.config.opt} seed {r.config.seed} (lr {r.config.lr:g}): {r.provenance.get('reason')}")
glue_text("fig2_setup", setup_sentence(grid, task))
glue_text("fig2_probe", probe_description(grid.rmed, grid.provenance))
step_map = published_steps(grid.rmed.step.unique())
summary = rmed_by_tensor(grid.rmed, steps=sorted(set(step_map.values())))
glue_number("fig2_seeds", len({r.config.seed for r in grid.results}))
describe_grid(grid)

# %% tags=["hide-input"]
fig, axes = figure_grid(2, width=7.5, height=3.3, ncols=1)
for ax, (it, step) in zip(axes, step_map.items()):
    rmed_by_tensor_plot(ax, summary[summary.step == step], opts=shown,
                        title=f"probe for iteration {it} (step {step} here)")
axes[0].legend(title="optimizer", fontsize=7, loc="lower right")
axes[0].set_xlabel("")
glue_figure("fig2_rmed", fig)

# %% [markdown]
# ```{glue:figure} fig2_rmed
# :name: fig-fig2-rmed
#
# R_med of every parameter tensor (index in the model's `named_parameters()`), grouped by kind,
# at the probes standing for iterations 750 (top) and 1250 (bottom): the median over seeds, with
# a bar from the smallest to the largest seed. One colour per optimizer (`opt` chooses which are
# shown). A tensor whose R_med is undefined in every seed has no point.
# ```
#
# Some tensors have no defined R_med: the key projection's bias, for one, has a Hessian that is
# zero in theory (adding a vector $b$ to every key adds $q \cdot b$ to all of a query's scores,
# which the softmax ignores), so what autograd returns for it is rounding noise. Such an R_med is
# undefined by the rule of {ref}`undefined-rmed` and left out; the list below names them.

# %% tags=["hide-input"]
undefined = summary[summary.n_undefined > 0]
for row in undefined.itertuples():
    print(f"step {row.step}, {row.opt}: {row.layer} undefined in {row.n_undefined} of "
          f"{row.n_undefined + row.n_seeds} seeds")

# %% tags=["hide-input"]
show_provenance("fig2", params, grid.provenance)

# %% [markdown]
# ## Tensor by tensor, one optimizer against the other

# %% tags=["hide-input"]
import pandas as pd

y_opt, x_opt = opts
fig, axes = figure_grid(2, width=3.75, height=3.5)
counts = []
for ax, (it, step) in zip(axes, step_map.items()):
    both = opt_scatter(ax, summary[summary.step == step], x_opt=x_opt, y_opt=y_opt)
    ax.set_title(f"iteration {it} (step {step} here)")
    larger = int((both[y_opt] > both[x_opt]).sum())
    glue_number(f"fig2_larger_{it}", larger)
    glue_number(f"fig2_defined_{it}", len(both))
    medians = summary[summary.step == step].groupby("opt")["median"].median()
    for o in opts:
        glue_number(f"fig2_median_{o}_{it}", medians[o])
    counts.append(dict(iteration=it, step=step, tensors=len(both), **{f"{y_opt} larger": larger},
                       **{f"median R_med under {o}": medians[o] for o in opts}))
axes[0].legend(fontsize=7)
glue_figure("fig2_scatter", fig)
glue_text("fig2_y_opt", y_opt)
glue_text("fig2_x_opt", x_opt)
pd.DataFrame(counts).round(2)

# %% [markdown]
# ```{glue:figure} fig2_scatter
# :name: fig-fig2-scatter
#
# Each parameter tensor's R_med (median over seeds) under the two optimizers, coloured by kind
# (dotted: equal). Above the diagonal, the optimizer on the vertical axis has the larger R_med.
# ```

# %% tags=["hide-input"]
show_provenance("fig2", params, grid.provenance)

# %% [markdown]
# **What this shows, and what it does not.** Under {glue:text}`fig2_y_opt` the median R_med over
# seeds is the larger in {glue:text}`fig2_larger_750:.0f` of {glue:text}`fig2_defined_750:.0f`
# tensors at the probe for iteration 750 and {glue:text}`fig2_larger_1250:.0f` of
# {glue:text}`fig2_defined_1250:.0f` at the probe for 1250 (tensors with a defined R_med under
# both). Such a count is a description, not a verdict: the tensors of one seed are correlated, a
# count says nothing about how large the ratios are, and it has no error rate. The verdict on the
# claim — the ratio over tensors and seeds with its interval, and how often that rule errs — is
# in {doc}`fig3`; the CNN beside it is in {doc}`fig4`.
#
# **What would test it further.** The full 10k vocabulary at batch 64 (scale `study-10k`, not in
# the bundle for the cost of its probes, {doc}`fig1`),
# more seeds, probes at 0–1250 every 250 (the trajectory of each tensor's R_med, not two points of
# it), and the `paper` scale on a GPU (`-p scale paper -p lr ...`: no learning rate is tuned there).
#
# **Regenerate.** At `scale="study"` the runs are read from the results bundle `bundles/study/`
# (made by `rmed sweep sweeps/study-tuning.yaml`, `rmed sweep sweeps/study.yaml`, the two control
# sweeps, then `rmed bundle study sweeps/study-tuning.yaml sweeps/study.yaml
# sweeps/study-control-tuning.yaml sweeps/study-control.yaml`), and the figure by
# `papermill notebooks/fig2.py out.ipynb -p scale study` (`-p opt adam` shows Adam alone).

# %% tags=["hide-input"]
n_tensors = len(list(get_task(task).model(grid.results[0].config.scale).parameters()))
assert (grid.rmed.groupby(["opt", "seed", "step"]).layer.nunique() == n_tensors).all(), "every tensor probed"
at = grid.rmed[grid.rmed.step.isin(step_map.values())]
undefined_rows = at[at.r_med.isna()]
assert undefined_rows.undefined.notna().all() and (undefined_rows.undefined != "").all(), "every undefined R_med has a reason"
assert (at.dropna(subset=["r_med"]).undefined.fillna("") == "").all(), "a defined R_med has no reason"
bad = {(r.config.opt, r.config.seed) for r in grid.diverged}
kept = at[[(o, s) not in bad for o, s in zip(at.opt, at.seed)]]
assert (kept.r_med.dropna() >= 1).all(), "R_med is a max/median, >= 1"
