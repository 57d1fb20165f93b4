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
# `torch.autograd.functional.hessian`, and shows the measured costs.

# %% tags=["parameters"]
scale = "book"
seed = 0

# %%
import sys
from pathlib import Path

import pandas as pd
import torch

import rmed_core
from rmed_core.hessian import hessian_diagonal, rmed_per_layer

ROOT = Path(rmed_core.__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _hessian_helpers import make_case, max_rel_error, reference_diagonal  # noqa: E402

torch.manual_seed(seed)

# %% [markdown]
# ## Brute force: one Hessian-vector product per entry
#
# $h_k = e_k^\top \nabla^2 L\, e_k$, one HVP (about two gradients) per parameter entry, vmapped
# in chunks. Exact for every model; cost $\approx 2\,p$ gradients for $p$ entries.
#
# ## Structured exact method: products in each layer's output space
#
# For a layer $z_{nti} = \sum_j A_{ntj} W_{ij} + b_i$ whose weight is used once,
#
# $$\frac{\partial^2 L}{\partial W_{ij}^2} = \sum_n \sum_{t,t'} A_{ntj} A_{nt'j}\, B_{n,i}[t,t'],\qquad B_{n,i}[t,t'] = \frac{\partial^2 L}{\partial z_{nti}\,\partial z_{nt'i}}.$$
#
# $B$ is reached with HVPs in $z$-space (a zero tensor added to the output by a forward hook),
# which traverse only the network downstream of the layer, and all samples are probed at once
# after the block structure over samples has been *verified* with $\lceil\log_2 N\rceil$ random
# probes. Per layer it needs $K$ probes when the $z$-Hessian is also block-diagonal over
# positions (any layer with $T=1$, an output layer under a per-token loss), otherwise
# $\min(T, J+1)\cdot K$. Tied or re-used weights and unsupported modules fall back to brute force.
#
# ## Certified estimate
#
# `method="sampled"` computes exact entries at uniformly drawn coordinates: the order statistics
# $x_{(l)}, x_{(u)}$ with $P(\mathrm{Bin}(m,\tfrac12) < l),\ P(\mathrm{Bin}(m,\tfrac12)\ge u) \le \alpha/4$
# bracket the median; the maximum is bracketed by the largest verified entry and by
# $\|H_\text{block}\|_2$ from Lanczos on $H^2$ (Kuczyński–Woźniakowski bound, probability $\alpha/2$).
# A union bound gives $P(R_\mathrm{med}\in[\text{lower},\text{upper}]) \ge 1-\alpha$.

# %% [markdown]
# ## Exactness, checked live (float64)

# %%
cases = ["mlp_relu", "mlp_tanh", "cnn_max", "transformer", "transformer_tied", "tokenwise", "shared"]
if scale == "ci":
    cases = ["mlp_tanh", "cnn_max", "transformer"]
rows = []
for case in cases:
    model, loss, batch = make_case(case, torch.float64)
    ref = reference_diagonal(model, loss, batch)
    info: dict = {}
    diag = hessian_diagonal(model, loss, batch, method="exact", info=info)
    rows.append(dict(model=case, parameters=sum(p.numel() for p in model.parameters()),
                     max_rel_error=max_rel_error(diag, ref), hvps=info["n_hvp"],
                     brute_fallback=", ".join(info.get("fallback", {})) or "-"))
exactness = pd.DataFrame(rows)
exactness

# %%
assert (exactness.max_rel_error <= 1e-6).all(), exactness

# %% [markdown]
# ## R_med of a small transformer, exact and certified

# %%
model, loss, batch = make_case("transformer", torch.float64)
exact = rmed_per_layer(model, loss, batch)
sampled = rmed_per_layer(model, loss, batch, method="sampled", seed=seed, n_samples=40)
both = exact[["layer", "numel", "r_med"]].merge(sampled[["layer", "r_med", "lower", "upper"]], on="layer",
                                                 suffixes=("_exact", "_sampled"))
both.head(10)

# %%
covered = ((both.lower <= both.r_med_exact * (1 + 1e-9)) & (both.r_med_exact <= both.upper * (1 + 1e-9))).mean()
print(f"intervals covering the exact value: {covered:.0%} (stated confidence 95%)")

# %% [markdown]
# ## Measured costs
#
# The benchmark scripts in `benchmarks/` write their tables to `benchmarks/results/`; those that
# have been run are shown here.

# %%
results = ROOT / "benchmarks" / "results"
tables = {p.stem: pd.read_csv(p) for p in sorted(results.glob("*.csv"))}
for name, df in tables.items():
    print(name)
    print(df.to_string(index=False))
if not tables:
    print("no benchmark tables committed yet")
