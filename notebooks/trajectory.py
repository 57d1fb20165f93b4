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
# (chapter-trajectory)=
# # Along the whole trajectory: matched iteration and matched loss
#
# {doc}`fig3` compares the two optimizers at two probe steps, 750 and 1250. At both, SGD-M is also
# behind in training loss, so a larger R_med under SGD-M could mean either that its trajectory goes
# somewhere else or only that it has not got as far. This chapter follows the study's runs along
# their whole trajectory and compares them twice: at the same iteration, and at the same training
# loss.
#
# **What was run** (`sweeps/study-trajectory.yaml`). The study model of {doc}`fig3` (word-level
# PTB, 2,000 words, $d = 64$, 2 blocks, $T = 32$), each optimizer at its tuned learning rate
# ({doc}`fig1`), with every tensor's R_med probed every 125 iterations from 0 to 1250 on the fixed
# batch of 16 training sequences (512 tokens). {glue:text}`traj_held`
#
# **The rule** (`rmed_core.study.run_test`). It was committed before any of these runs was read.
# - **The unit.** Per run and step, $M_r(t)$: the mean of $\log R_\mathrm{med}$ over the tensors
#   that are finite in every run at that step. The tensors left out are counted.
# - **The test.** SGD-M's runs against Adam's runs as two independent samples, by the exact
#   permutation test of the difference of means. The interval is Welch's.
# - **Several steps read at once** are Holm-corrected. The claim is read at the two steps the
#   published table names, 750 and 1250, corrected over those two.
# - **Matched loss.** Each SGD-M probe is set against Adam at SGD-M's median probe-batch loss at
#   that step. Adam's $M$ is interpolated in log-loss between the two Adam probes whose losses
#   bracket that loss. An Adam run that never reached that loss in the probed range gives no value;
#   such runs are counted, never extrapolated.

# %% tags=["parameters"]
bundle: str = "trajectory"  # the results bundle of the trajectory study (rmed bundle NAME SPEC)
task: str = "ptb_lm"  # the task the bundle's runs trained on
alpha: float = 0.05  # the level of every test and of Holm's correction
sims: int = 2000  # simulated studies for the rule's error rates

# %% tags=["hide-input"]
import math

import numpy as np
import pandas as pd
from IPython.display import display

from rmed_core.book.plots import band_plot, figure_grid, ratio_over_time_plot, trajectory_plot
from rmed_core.book.report import glue_figure, glue_number, glue_text, show_provenance
from rmed_core.runs.bundle import bundle_provenance, read_bundle
from rmed_core.study.published import published_steps
from rmed_core.study.run_test import run_means, simulate_run_test
from rmed_core.study.trajectory import (claims_at_steps, decomposition_table, interpolation_summary,
                                        kind_trajectories, trajectory_claims)

params = dict(bundle=bundle, task=task, alpha=alpha, sims=sims)
prov = bundle_provenance(bundle)
runs = read_bundle(bundle, "runs", task=task)
runs = runs[runs.probe_steps.fillna("").astype(str).str.len() > 0]
if runs.empty:
    raise ValueError(f"bundle={bundle!r}: holds no probed run of task={task!r}")
rmed = read_bundle(bundle, "rmed", run=list(runs.run))
probes = read_bundle(bundle, "probe", run=list(runs.run))
seeds = {opt: sorted(int(s) for s in g.seed) for opt, g in runs.groupby("opt")}
both = sorted(set.intersection(*(set(v) for v in seeds.values()))) if len(seeds) == 2 else []
steps = sorted(int(s) for s in rmed.step.unique())
step_map = published_steps(steps)
held = (f"The bundle `bundles/{bundle}` holds {len(runs)} runs: seeds {', '.join(map(str, seeds.get('sgdm', [])))} of "
        f"SGD-M and {', '.join(map(str, seeds.get('adam', [])))} of Adam, each probed at {len(steps)} steps "
        f"({steps[0]} to {steps[-1]}).")
if prov.get("missing"):
    held += (f" The study's specification has {len(runs) + len(prov['missing'])} runs; the "
             f"{len(prov['missing'])} not yet computed are listed in the bundle's provenance and left out here.")
glue_text("traj_held", held)
glue_number("traj_runs", len(runs))
glue_number("traj_runs_missing", len(prov.get("missing", [])))
records = [dict(bundle=bundle, command=prov.get("command"), written_utc=prov.get("written_utc"),
                git_commit=prov.get("git_commit"), code_versions_of_runs=", ".join(prov.get("code_versions_of_runs", [])),
                torch=prov.get("torch"), devices=", ".join(prov.get("devices", [])),
                wall_time_s=prov.get("wall_time_s_total"))]
print(held)
runs[["opt", "lr", "seed", "steps", "probe_method", "hessian_batch", "wall_time_s", "probe_time_s", "code_version"]]

# %% [markdown]
# ## R_med along each optimizer's trajectory

# %% tags=["hide-input"]
traj = kind_trajectories(rmed)
kinds = ["all"] + [k for k in dict.fromkeys(traj.tensors) if k != "all"]
fig, axes = figure_grid(len(kinds) + 1, width=3.75, height=2.6)
for ax, kind in zip(axes, kinds):
    trajectory_plot(ax, traj, tensors=kind)
    n = int(traj[traj.tensors == kind].n_tensors.max())
    ax.set_title(f"{kind} ({n} tensor{'s' * (n != 1)})")
    ax.set_ylabel(r"geometric mean $R_\mathrm{med}$")
axes[0].legend(fontsize=7)
loss_ax = axes[-1]
band_plot(loss_ax, probes, "step", "loss", band="minmax", logy=True, marker="o")
loss_ax.set_title("probe-batch loss (mean, min to max over runs)")
glue_figure("traj_kinds", fig)

# %% [markdown]
# ```{glue:figure} traj_kinds
# :name: fig-traj-kinds
#
# R_med along each optimizer's trajectory, over all tensors and by kind: the geometric mean over
# runs of each run's geometric mean over the tensors of that kind ($\exp \overline{M}$), with its 95%
# t-interval over runs. Last panel: the loss on the probe batch at each probe.
# ```

# %% tags=["hide-input"]
show_provenance("trajectory", params, records)

# %% [markdown]
# ## The ratio over time, at matched iteration and at matched loss

# %% tags=["hide-input"]
claims = trajectory_claims(rmed, probes, alpha=alpha)
fig, axes = figure_grid(1, width=7.5, height=3.4)
ratio_over_time_plot(axes[0], claims, marks=sorted(step_map.values()))
axes[0].legend(fontsize=7)
axes[0].set_title("SGD-M / Adam, ratio of geometric means with 95% Welch interval "
                  "(filled: a difference shown after Holm over the steps)")
glue_figure("traj_ratio", fig)
interp = interpolation_summary(rmed, probes)
glue_number("traj_interp_median", interp["median_factor"])
glue_number("traj_interp_max", interp["max_factor"])
with pd.option_context("display.max_colwidth", None, "display.max_rows", None):
    display(claims.round(4))

# %% [markdown]
# ```{glue:figure} traj_ratio
# :name: fig-traj-ratio
#
# The ratio $R^{\mathrm{SGDM}}_{\mathrm{med}} / R^{\mathrm{Adam}}_{\mathrm{med}}$ (the ratio of the two
# optimizers' geometric means of $\exp M_r$) at each of SGD-M's probe steps. Solid: Adam at the same
# step. Dashed (shifted right a little): Adam interpolated at the loss SGD-M reached at that step.
# Dotted verticals: the steps standing for the published iterations 750 and 1250.
# ```

# %% tags=["hide-input"]
show_provenance("trajectory", params, records)
#
# The matched-loss interpolation puts Adam's $M$ at a loss between two of its probes. Its error,
# measured by predicting each of Adam's interior probes from the probes on either side of it
# (a gap twice the grid's, so this overstates the error), is a median factor of
# {glue:text}`traj_interp_median:.3f` on R_med and at most {glue:text}`traj_interp_max:.3f`.

# %% [markdown]
# ## The verdict at the published iterations, beside its error rates

# %% tags=["hide-input"]
verdict = claims_at_steps(rmed, probes, list(step_map.values()), alpha=alpha)
means = run_means(rmed[rmed.step.isin(list(step_map.values()))])
rates = []
for it, step in step_map.items():
    sd = float(means[means.step == step].groupby("opt").m.std().max())
    n_here = int(min(means[(means.step == step)].groupby("opt").m.count()))
    for n in sorted({n_here, 10}):
        ok = n >= 2 and math.isfinite(sd) and sd > 0  # the spread needs two runs a side to be measured
        rates.append(dict(iteration=it, step=step, runs_a_side=n, between_run_sd=sd,
                          fpr=simulate_run_test(n, 0.0, sd, n_sims=sims, alpha=alpha) if ok else math.nan,
                          power_1_3=simulate_run_test(n, math.log(1.3), sd, n_sims=sims, alpha=alpha)
                          if ok else math.nan))
rates = pd.DataFrame(rates)
for it, step in step_map.items():
    for comparison in ("iteration", "loss"):
        row = verdict[(verdict.step == step) & (verdict.comparison == comparison)].iloc[0]
        glue_text(f"traj_verdict_{comparison}_{it}", row.verdict)
        for f in ("ratio", "lower", "upper", "p_holm"):
            glue_number(f"traj_{f}_{comparison}_{it}", getattr(row, f))
        glue_number(f"traj_nadam_{comparison}_{it}", row.n_adam)
here = rates.sort_values("runs_a_side").groupby("iteration").first()
if here.fpr.notna().all():
    glue_text("traj_rates", (
        f"With {int(here.runs_a_side.min())} runs a side and the between-run spread measured here, the rule says "
        f"*reproduced* under no effect with probability {here.fpr[750]:.3f} at 750 and {here.fpr[1250]:.3f} at 1250, "
        f"and at a ratio of 1.3 with probability {here.power_1_3[750]:.2f} and {here.power_1_3[1250]:.2f}."))
else:
    glue_text("traj_rates", (
        f"With {int(here.runs_a_side.min())} run(s) a side the between-run spread cannot be measured, so the rule's "
        "error rates cannot be simulated at this spread yet; on the five-seed study's spread they are in "
        "the fig3 chapter's run-level table."))
display(verdict.assign(iteration=verdict.step.map({s: i for i, s in step_map.items()})).round(4))
rates.round(3)

# %% [markdown]
# ## The ratio's two parts, read by the same rule
#
# $R_\mathrm{med} = h_{\max} / h_{\mathrm{med}}$, so the ratio of R_med is the ratio of the
# largest diagonal entries divided by the ratio of the medians (over the same tensors, those where
# all three are finite and positive). A ratio of R_med above 1 can come from a larger maximum under
# SGD-M or from a smaller median. {doc}`../statistic` says what a small median means. Each part is
# read here with the rule above.

# %% tags=["hide-input"]
parts = decomposition_table(rmed, alpha=alpha)
wide = parts.pivot_table(index="step", columns="part", values="ratio")[["r_med", "h_max", "h_median"]]
for it, step in step_map.items():
    for part in ("h_max", "h_median"):
        row = parts[(parts.part == part) & (parts.step == step)].iloc[0]
        glue_number(f"traj_{part}_ratio_{it}", row.ratio)
        glue_text(f"traj_{part}_direction_{it}", row.direction)
with pd.option_context("display.max_rows", None):
    display(parts.round(4))
wide.round(3)

# %% [markdown]
# ## Verdict
#
# At the published iteration 750, at the same iteration: *{glue:text}`traj_verdict_iteration_750`*.
# The ratio is {glue:text}`traj_ratio_iteration_750:.2f`, with interval
# [{glue:text}`traj_lower_iteration_750:.2f`, {glue:text}`traj_upper_iteration_750:.2f`] and Holm
# p = {glue:text}`traj_p_holm_iteration_750:.4f`. At 1250: *{glue:text}`traj_verdict_iteration_1250`*,
# with ratio {glue:text}`traj_ratio_iteration_1250:.2f`
# ([{glue:text}`traj_lower_iteration_1250:.2f`, {glue:text}`traj_upper_iteration_1250:.2f`], p =
# {glue:text}`traj_p_holm_iteration_1250:.4f`).
#
# **At matched loss** — each SGD-M run against Adam at the loss SGD-M had reached:
# - At SGD-M's step 750: *{glue:text}`traj_verdict_loss_750`*, ratio
#   {glue:text}`traj_ratio_loss_750:.2f`, p = {glue:text}`traj_p_holm_loss_750:.4f`, with
#   {glue:text}`traj_nadam_loss_750:.0f` Adam runs bracketing the loss.
# - At 1250: *{glue:text}`traj_verdict_loss_1250`*, ratio {glue:text}`traj_ratio_loss_1250:.2f`,
#   p = {glue:text}`traj_p_holm_loss_1250:.4f`, with {glue:text}`traj_nadam_loss_1250:.0f` Adam runs.
#
# Where the matched-iteration verdict holds and the matched-loss one does not, the gap goes with how
# far training has got, not with where the trajectory goes. Where both hold, it does not.
#
# **The two parts.** At 750 the ratio of maxima is {glue:text}`traj_h_max_ratio_750:.2f`
# (*{glue:text}`traj_h_max_direction_750`*) and the ratio of medians is
# {glue:text}`traj_h_median_ratio_750:.2f` (*{glue:text}`traj_h_median_direction_750`*). At 1250
# they are {glue:text}`traj_h_max_ratio_1250:.2f` (*{glue:text}`traj_h_max_direction_1250`*) and
# {glue:text}`traj_h_median_ratio_1250:.2f` (*{glue:text}`traj_h_median_direction_1250`*).
#
# **The rule's error rates.** {glue:text}`traj_rates` The table above also gives them at ten runs
# a side, the study's design.
#
# **Regenerate.**
#
# ```bash
# rmed sweep sweeps/study-trajectory.yaml --workers 2 --skip-bundle trajectory   # resumable; about two hours a run on this CPU
# rmed bundle trajectory sweeps/study-trajectory.yaml --partial
# papermill notebooks/trajectory.py out.ipynb -p bundle trajectory
# ```

# %% tags=["hide-input"]
# independent checks: at step 0 the two runs of a seed are the same model on the same batch, so their
# R_med must agree tensor by tensor; the matched-iteration ratio at each step from plain pandas; the
# decomposition adds up (log ratio of R_med = log ratio of maxima - log ratio of medians)
start = rmed[rmed.step == 0].pivot_table(index=["seed", "layer"], columns="opt", values="r_med").dropna()
if len(start):
    assert np.allclose(start["sgdm"], start["adam"], rtol=1e-5), "the two optimizers differ at step 0"
for step, g in run_means(rmed).groupby("step"):
    row = claims[(claims.comparison == "iteration") & (claims.step == step)].iloc[0]
    ratio = math.exp(g[g.opt == "sgdm"].m.mean() - g[g.opt == "adam"].m.mean())
    assert math.isclose(row.ratio, ratio, rel_tol=1e-9), (step, row.ratio, ratio)
assert np.allclose(np.log(wide.r_med), np.log(wide.h_max) - np.log(wide.h_median), atol=1e-9)
