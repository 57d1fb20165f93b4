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
# (chapter-fig3)=
# # The SGD / Adam ratio, beside the published table
#
# **The paper's claim, in numbers.** The one table of numbers from the paper that is public
# ({cite:t}`ahn2023linear` reprint it as "full Transformers, from Jiang et al.") gives the ratio
# $R^{\mathrm{SGD}}_{\mathrm{med}} / R^{\mathrm{Adam}}_{\mathrm{med}}$, mean (std) over runs, for
# three layers of a Transformer at iterations 750 and 1250. Every ratio is above 1. "Layer #" is an
# index into the model's parameter tensors; the paper's task and model size are not known, so the
# layers compared here are this project's tensors with the same indices, and every other tensor
# is shown too.
#
# **This project's measurement.** SGD with momentum (`sgdm`) and Adam, each at its tuned learning
# rate, trained from the same initialisations with the same data order for each seed; the ratio
# is taken per seed and then averaged. A row's verdict is *reproduced* when the ratio exceeds 1 in
# every seed, *partly* when only its mean does, *not reproduced* otherwise.

# %% tags=["parameters"]
from typing import Optional, Union

task: str = "ptb_lm"  # the language task (ptb_lm or polarity_cls)
lr: Union[float, str, None] = None  # None: tuned values; a number for both optimizers; or "sgdm:0.1,adam:0.01"
seed: int = 0  # first seed; the scale sets how many
steps: Optional[int] = None  # None: the scale's default
scale: str = "book"  # ci | book | paper

# %% tags=["hide-input"]
from rmed_core.analysis import compare_with_published, ratio_table
from rmed_core.experiments import learning_rates, run_grid, seeds_for
from rmed_core.plots import figure_grid, layer_group, LAYER_GROUPS
from rmed_core.report import glue_figure, glue_number, glue_text, show_provenance

params = dict(task=task, lr=lr, seed=seed, steps=steps, scale=scale)
seeds = seeds_for(scale, seed)
grid = run_grid([task], ["sgdm", "adam"], seeds, scale=scale, lr=learning_rates(lr, ["sgdm", "adam"]),
                **({"steps": steps} if steps else {}))
for r in grid.diverged:
    print(f"DIVERGED: {r.config.opt} seed {r.config.seed} (lr {r.config.lr:g}): {r.provenance.get('reason')}")
probed = sorted(int(s) for s in grid.rmed.step.unique())
# The published iterations, 750 and 1250, where this run is long enough; otherwise the probes at
# 60% of training and at its end (a stated choice: the paper's total is not known).
step_map = ({750: 750, 1250: 1250} if {750, 1250} <= set(probed)
            else {750: min(probed, key=lambda s: abs(s - 0.6 * probed[-1])), 1250: probed[-1]})
ratios = ratio_table(grid.rmed, steps=sorted(set(step_map.values())))
print(f"seeds {seeds}; probes at steps {probed}; published iterations 750, 1250 -> steps "
      f"{step_map[750]}, {step_map[1250]}")

# %% tags=["hide-input"]
table = compare_with_published(ratios, step_map)
n_rows = int((table.verdict == "reproduced").sum())
glue_number("fig3_rows_reproduced", n_rows)
glue_text("fig3_verdict", "reproduced" if n_rows == len(table) else
          "partly reproduced" if (table.verdict != "not reproduced").any() else "not reproduced")
table

# %% tags=["hide-input"]
last = ratios[ratios.step == step_map[1250]].sort_values("layer_index")
fig, axes = figure_grid(1, width=9.5, height=3.8)
ax = axes[0]
colors = [LAYER_GROUPS[layer_group(n)] for n in last.layer]
ax.bar(range(len(last)), last["mean"], yerr=last["std"], color=colors, alpha=0.8, capsize=2)
ax.axhline(1, color="k", linewidth=0.8)
ax.set_yscale("log")
ax.set_xticks(range(len(last)), [f"{i}" for i in last.layer_index], fontsize=7)
ax.set_xlabel("parameter tensor (index; colour: kind of layer)")
ax.set_ylabel(r"$R^{\mathrm{SGDM}}_{\mathrm{med}} / R^{\mathrm{Adam}}_{\mathrm{med}}$")
ax.set_title(f"{task}, step {step_map[1250]}: mean and std over {len(seeds)} seeds")
handles = [__import__("matplotlib.patches", fromlist=["Patch"]).Patch(color=c, label=g)
           for g, c in LAYER_GROUPS.items() if g in {layer_group(n) for n in last.layer}]
ax.legend(handles=handles, fontsize=7, ncols=3)
glue_figure("fig3_ratios", fig)
above = int((last["mean"] > 1).sum())
glue_number("fig3_layers_above", above)
glue_number("fig3_layers", len(last))
glue_number("fig3_median_ratio", float(last["mean"].median()))
print(f"mean ratio > 1 in {above} of {len(last)} tensors; median over tensors {last['mean'].median():.2f}")

# %% [markdown]
# ```{glue:figure} fig3_ratios
# :name: fig-fig3-ratios
#
# The ratio of SGD-with-momentum's R_med to Adam's for every parameter tensor at the last probe
# (bars: mean over seeds; whiskers: standard deviation). Above the line, SGD-M's R_med is larger.
# ```

# %% tags=["hide-input"]
show_provenance("fig3", params, grid.provenance)

# %% [markdown]
# **Verdict: {glue:text}`fig3_verdict`.** {glue:text}`fig3_rows_reproduced:.0f` of the 6 published
# rows are reproduced (ratio above 1 in every seed). At the last probe the mean ratio exceeds 1 in {glue:text}`fig3_layers_above:.0f` of
# {glue:text}`fig3_layers:.0f` parameter tensors (median ratio over tensors
# {glue:text}`fig3_median_ratio:.2f`); the table above gives the verdict of each published row.
# The comparison rests on this project's task, model and learning rates: the published numbers
# come from a larger Transformer on an unknown task, so agreement in direction, not in value, is
# what can be checked. What would test it further is listed in {doc}`fig2`: longer training, the
# paper-scale model on a GPU (`-p scale paper`, where the probes at iterations 750 and 1250 exist),
# more seeds (the scale sets them: 3 at `book`, 5 at `paper`), and the ratio's sensitivity to the learning rates.

# %% tags=["hide-input"]
assert (ratios.n_seeds <= len(seeds)).all() and (ratios.n_seeds >= 1).all()
assert len(table) == 6
