"""Bad input, as a suite: each input a demanding user brings gets a clear error (checked by its
message) or a number equal to the float64 ``torch.autograd.functional.hessian`` reference --
nothing in between. The numbered cases are those of the "never a silently wrong number" list:
(1) stochastic forward passes, (2) graphs the structured engine cannot see through, (5) a store
that must prove what it serves, plus inputs refused before any work starts."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from rmed_core.hessian import HessianOperator, hessian_diagonal, rmed_per_layer, top_eigenvalues
from rmed_core.hessian.testing import allclose_report, make_case, max_rel_error, reference_diagonal

TOL = 1e-10  # float64, relative to each tensor's largest entry


def _assert_exact(model, loss_fn, batch, method="exact", **kw):
    """The diagonal by ``method`` equals the autograd reference; returns the info dict."""
    info = {}
    got = hessian_diagonal(model, loss_fn, batch, method=method, info=info, **kw)
    ref = reference_diagonal(model, loss_fn, batch, kw.get("params"))
    assert max_rel_error(got, ref) < TOL, allclose_report(got, ref)
    return info


def _cls_batch(n=6, d=3, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, k, (n,), generator=g))


# ---- (1) stochastic forward passes ---------------------------------------------------------------
class FunctionalDropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.fc, self.out, self.p = nn.Linear(3, 8), nn.Linear(8, 2), p

    def forward(self, x):
        return self.out(F.dropout(torch.tanh(self.fc(x)), self.p, training=True))


class AttentionNet(nn.Module):
    def __init__(self, dropout=0.5):
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.attn = nn.MultiheadAttention(4, 2, dropout=dropout, batch_first=True)
        self.out = nn.Linear(4, 5)

    def forward(self, x):
        h = self.emb(x)
        return self.out(self.attn(h, h, h, need_weights=True)[0])  # explicit attention: twice differentiable


def _lm_loss(o, t):
    return F.cross_entropy(o.reshape(-1, o.shape[-1]), t.reshape(-1))


def _attn_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 5, (3, 4), generator=g), torch.randint(0, 5, (3, 4), generator=g)


@pytest.mark.parametrize("entry", ["exact", "brute", "operator", "rmed", "sampled", "top_eig"])
def test_functional_dropout_is_refused_naming_the_module(entry):
    torch.manual_seed(0)
    net = FunctionalDropout().double()
    batch = _cls_batch()
    call = {"exact": lambda: hessian_diagonal(net, F.cross_entropy, batch),
            "brute": lambda: hessian_diagonal(net, F.cross_entropy, batch, method="brute"),
            "operator": lambda: HessianOperator(net, F.cross_entropy, batch),
            "rmed": lambda: rmed_per_layer(net, F.cross_entropy, batch),
            "sampled": lambda: rmed_per_layer(net, F.cross_entropy, batch, method="sampled"),
            "top_eig": lambda: top_eigenvalues(net, F.cross_entropy, batch, k=1)}[entry]
    words = r"not deterministic: the model's own forward \(FunctionalDropout\) draws random numbers"
    with pytest.raises(ValueError, match=words):
        call()


def test_functional_dropout_with_tiny_p_is_still_refused():
    # two passes would agree bitwise most of the time; drawing random numbers is what gives it away
    net = FunctionalDropout(p=1e-9).double()
    with pytest.raises(ValueError, match="draws random numbers"):
        hessian_diagonal(net, F.cross_entropy, _cls_batch())


def test_attention_dropout_in_training_mode_is_refused_naming_it():
    torch.manual_seed(0)
    net = AttentionNet().double().train()
    with pytest.raises(ValueError, match=r"module 'attn' \(MultiheadAttention\)"):
        rmed_per_layer(net, _lm_loss, _attn_batch())


def test_attention_dropout_in_eval_mode_is_exact():
    torch.manual_seed(0)
    net = AttentionNet().double().eval()
    _assert_exact(net, _lm_loss, _attn_batch(), params=["emb.weight", "out.weight", "out.bias"])


def test_private_generator_noise_is_refused():
    class Noisy(nn.Module):  # random, but never touches torch's global generators
        def __init__(self):
            super().__init__()
            self.fc, self.gen = nn.Linear(3, 2), torch.Generator().manual_seed(1)

        def forward(self, x):
            return self.fc(x) + torch.randn(x.shape[0], 2, generator=self.gen, dtype=x.dtype)

    with pytest.raises(ValueError, match=r"not deterministic: the model's own forward \(Noisy\) gives a different"):
        hessian_diagonal(Noisy().double(), F.cross_entropy, _cls_batch())


def test_nn_dropout_keeps_its_message():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    with pytest.raises(ValueError, match="'1'.*Dropout.*model.eval"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(5, 3), torch.randint(0, 2, (5,))))


def test_the_check_leaves_the_random_state_alone():
    m, loss, batch = make_case("mlp_tanh")
    torch.manual_seed(3)
    hessian_diagonal(m, loss, batch)
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))


# ---- (2) graphs the structured engine cannot see through ------------------------------------------
class TwoLayer(nn.Module):
    def __init__(self, mid=None):
        super().__init__()
        self.a, self.b, self.mid = nn.Linear(3, 4), nn.Linear(4, 2), mid

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.tanh(h) if self.mid is None else self.mid(h))


def test_forward_hook_sends_the_module_to_brute_force():
    torch.manual_seed(0)
    net = TwoLayer().double()
    net.a.register_forward_hook(lambda m, i, o: o * o + o)  # changes the layer's output
    info = _assert_exact(net, F.cross_entropy, _cls_batch())
    assert info["paths"]["a.weight"] == info["paths"]["a.bias"] == "brute"
    assert "forward hook" in info["fallback"]["a.weight"]
    assert info["paths"]["b.weight"] != "brute"  # the unhooked layer keeps the structured path


def test_forward_pre_hook_sends_the_module_to_brute_force():
    torch.manual_seed(0)
    net = TwoLayer().double()
    net.b.register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))
    info = _assert_exact(net, F.cross_entropy, _cls_batch())
    assert info["paths"]["b.weight"] == "brute" and "pre-hook" in info["fallback"]["b.weight"]


def test_global_forward_hook_sends_everything_to_brute_force():
    torch.manual_seed(0)
    net = TwoLayer().double()

    def square_linear_outputs(m, i, o):
        return o * o + o if isinstance(m, nn.Linear) else None

    h = nn.modules.module.register_module_forward_hook(square_linear_outputs)
    try:
        info = _assert_exact(net, F.cross_entropy, _cls_batch())
    finally:
        h.remove()
    assert set(info["paths"].values()) == {"brute"} and "global" in info["fallback"]["a.weight"]


class Cube(torch.autograd.Function):
    """x -> x^3 with a backward that detaches: autograd sees no second derivative through it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x.detach() ** 2 * g


class CubeOnce(Cube):
    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


class Apply(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, h):
        return self.fn.apply(h)


@pytest.mark.parametrize("method", ["exact", "brute"])
def test_custom_function_is_warned_about_and_never_certified_through(method):
    torch.manual_seed(0)
    net = TwoLayer(Apply(Cube)).double()
    with pytest.warns(UserWarning, match="custom autograd.Function.*Cube"):
        info = _assert_exact(net, F.cross_entropy, _cls_batch(), method=method)
    if method == "exact":
        assert info["paths"]["a.weight"] != "gauss-newton"  # the Gauss-Newton certificate declined


def test_custom_function_in_the_loss_declines_every_shortcut():
    torch.manual_seed(0)
    m, _, batch = make_case("mlp_relu")  # ReLU MLP: the Gauss-Newton shortcut would apply

    def loss(o, t):
        return F.cross_entropy(Cube.apply(o), t)

    with pytest.warns(UserWarning, match="Cube"):
        info = _assert_exact(m, loss, batch)
    assert "gauss-newton" not in info["paths"].values()


@pytest.mark.parametrize("method", ["exact", "brute"])
def test_once_differentiable_raises_naming_the_parameter(method):
    torch.manual_seed(0)
    net = TwoLayer(Apply(CubeOnce)).double()
    with pytest.raises(RuntimeError, match="'a.weight'.*CubeOnce.*differentiate twice"):
        hessian_diagonal(net, F.cross_entropy, _cls_batch(), method=method)


def test_once_differentiable_cut_graph_is_not_zero_curvature():
    # the error node check of brute force itself (a cut second-order graph raises, never zeros)
    from rmed_core.hessian._guards import check_twice_differentiable

    torch.manual_seed(0)
    net = TwoLayer(Apply(CubeOnce)).double()
    x, y = _cls_batch()
    loss = F.cross_entropy(net(x), y)
    g = torch.autograd.grad(loss, [net.a.weight, net.b.weight], create_graph=True)
    with pytest.raises(RuntimeError, match="'a.weight' cannot be computed.*differentiate twice"):
        check_twice_differentiable({"a.weight": g[0]})


def test_embedding_scale_grad_by_freq_goes_to_brute_force_and_is_exact():
    torch.manual_seed(0)
    net = AttentionNet(dropout=0.0).double().eval()
    net.emb.scale_grad_by_freq = True
    x, y = _attn_batch()
    x[0, :3] = 1  # repeated tokens: the frequency scaling matters
    info = _assert_exact(net, _lm_loss, (x, y), params=["emb.weight", "out.weight"])
    assert info["paths"]["emb.weight"] == "brute" and "scale_grad_by_freq" in info["fallback"]["emb.weight"]


@pytest.mark.parametrize("method", ["exact", "brute", "sampled", "operator"])
def test_batchnorm_buffers_are_restored(method):
    m, loss, batch = make_case("batchnorm_train")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    if method == "operator":
        HessianOperator(m, loss, batch).matvec(torch.ones(sum(p.numel() for p in m.parameters())))
    elif method == "sampled":
        rmed_per_layer(m, loss, batch, method="sampled", n_samples=8)
    else:
        got = hessian_diagonal(m, loss, batch, method=method)
    after = m.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert int(after["bn.num_batches_tracked"]) == 0
    if method in ("exact", "brute"):
        ref = reference_diagonal(m, loss, batch)
        # the structured path on merged BatchNorm samples agrees to ~1e-7 (the exactness suite allows 1e-6)
        tol = 1e-6 if method == "exact" else TOL
        assert max_rel_error(got, ref) < tol, allclose_report(got, ref)


# ---- inputs refused before any work starts --------------------------------------------------------
def test_meta_device_model_is_refused():
    with torch.device("meta"):
        net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="'weight' is on the meta device.*materialise"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(4, 3), torch.randint(0, 2, (4,))))


def test_empty_batch_is_refused():
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="batch is empty"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(0, 3), torch.randint(0, 2, (0,))))


def test_batch_too_large_for_memory_is_refused_before_any_work():
    net = nn.Sequential(nn.Embedding(10, 64), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    n = 10**9  # stride-0 views: the batch itself takes no memory
    x = torch.zeros(1, 16, dtype=torch.long).expand(n, 16)
    y = torch.zeros(1, 16, dtype=torch.long).expand(n, 16)
    with pytest.raises(ValueError, match=r"batch of 1000000000 samples is too large for memory.*GiB.*at most"):
        hessian_diagonal(net, _lm_loss, (x, y))


def test_non_scalar_and_non_finite_losses_malformed_batches_unknown_and_frozen_names():
    m, loss, (x, y) = make_case("mlp_relu")
    with pytest.raises(ValueError, match="scalar"):
        hessian_diagonal(m, lambda o, t: F.cross_entropy(o, t, reduction="none"), (x, y))
    with pytest.raises(ValueError, match="not finite"):
        hessian_diagonal(m, loss, (x * float("inf"), y))
    with pytest.raises(ValueError, match="batch must be a pair"):
        hessian_diagonal(m, loss, (x, y, y))
    with pytest.raises(ValueError, match="batch size mismatch"):
        hessian_diagonal(m, loss, (x, y[:-1]))
    with pytest.raises(ValueError, match="valid names"):
        hessian_diagonal(m, loss, (x, y), params=["nope"])
    next(m.parameters()).requires_grad_(False)
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    with pytest.raises(ValueError, match="do not require grad"):
        hessian_diagonal(m, loss, (x, y), params=frozen)


# ---- TrainConfig: refused on construction, before any work ------------------------------------------
@pytest.mark.parametrize("field, value, words", [
    ("seed", 2**70, r"seed=1180591620717411303424: expected an integer in \[0, 2\*\*63\)"),
    ("seed", -1, "seed=-1: expected an integer"),
    ("steps", 3.0, r"steps=3.0: expected a positive integer \(got a float\)"),
    ("hessian_batch", 8.0, "hessian_batch=8.0: expected a positive integer"),
    ("probe_top_eig", "no", "probe_top_eig='no': expected True or False"),
])
def test_train_config_refuses(field, value, words):
    from rmed_core.trainer import TrainConfig

    with pytest.raises(ValueError, match=words):
        TrainConfig(**{field: value})


def test_probe_batch_too_large_for_memory_is_refused_before_training(tmp_path):
    from rmed_core.store import ResultStore
    from rmed_core.trainer import TrainConfig, train

    steps = []
    with pytest.raises(ValueError, match=r"hessian_batch=1000000000 \(the probe batch\).*too large for memory"):
        train(TrainConfig(task="ptb_lm", scale="ci", steps=2, hessian_batch=10**9), ResultStore(tmp_path),
              progress=False, callback=lambda s, loss: steps.append(s))
    assert not steps  # not one training step was taken


# ---- (5) the store proves what it serves ---------------------------------------------------------
FAST = dict(task="ptb_lm", scale="ci", steps=3, probe_steps=(), probe_top_eig=False)


def _stored_run(root, **kw):
    from rmed_core.store import ResultStore
    from rmed_core.trainer import TrainConfig, train

    r = train(TrainConfig(**{**FAST, **kw}), ResultStore(root), progress=False)
    return r.config, r.dir


def _edit_one_digit(path):
    text = path.read_text()
    i = next(i for i, c in enumerate(text) if c.isdigit() and i > text.index("\n"))
    path.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])  # same size, one digit


def test_same_size_edit_is_detected_and_the_run_isolated(tmp_path):
    from rmed_core.store import CorruptRunError, CorruptRunWarning, ResultStore, load_results

    _, good = _stored_run(tmp_path, seed=0)
    cfg, bad = _stored_run(tmp_path, seed=1)
    size = (bad / "loss.csv").stat().st_size
    _edit_one_digit(bad / "loss.csv")
    assert (bad / "loss.csv").stat().st_size == size
    with pytest.raises(CorruptRunError, match=r"loss.csv: its content does not match the SHA-256.*delete .*recompute"):
        ResultStore(tmp_path).get(cfg.key_dict())
    with pytest.warns(CorruptRunWarning, match=rf"(?s)1 stored run\(s\) .* corrupt.*{bad.name}"):
        loss = load_results("loss", root=tmp_path)
    assert set(loss["seed"]) == {0}  # the intact run is still served


@pytest.mark.parametrize("content", ["", "{garbled", "{}"])
def test_empty_or_garbled_complete_marker_names_the_file(tmp_path, content):
    from rmed_core.store import CorruptRunError, CorruptRunWarning, ResultStore, load_results
    from rmed_core.trainer import train

    cfg, d = _stored_run(tmp_path)
    (d / "COMPLETE").write_text(content)
    with pytest.raises(CorruptRunError, match=r"COMPLETE: the completion record is empty or garbled.*delete"):
        ResultStore(tmp_path).get(cfg.key_dict())
    with pytest.raises(CorruptRunError, match="COMPLETE"):
        train(cfg, ResultStore(tmp_path), progress=False)
    with pytest.warns(CorruptRunWarning, match="COMPLETE"):
        assert load_results("loss", root=tmp_path).empty
    with pytest.warns(RuntimeWarning, match="recomputing a corrupt run"):
        r = train(cfg, ResultStore(tmp_path), progress=False, recompute_corrupt=True)
    assert not r.from_store and ResultStore(tmp_path).status(cfg.key_dict()) == ("stored", None)


def test_sweep_reports_a_corrupt_run_as_failed_and_recomputes_it_on_request(tmp_path, capsys):
    from rmed_core.cli import main
    from rmed_core.store import ResultStore
    from rmed_core.sweep import run_point
    from rmed_core.sweep_spec import load_spec

    spec = tmp_path / "grid.yaml"
    spec.write_text("scale: ci\ntasks: [ptb_lm]\noptimizers: [adam]\nseeds: [0]\nsteps: 3\n"
                    "config: {probe_every: 0, probe_top_eig: false}\n")
    point = load_spec(spec).points[0]
    store = tmp_path / "store"
    assert run_point(point, store)["outcome"] == "finished"
    d = ResultStore(store).run_dir(point.config.key_dict())
    _edit_one_digit(d / "loss.csv")
    assert main(["sweep", str(spec), "--store", str(store), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "0 finished, 1 failed" in out and "loss.csv" in out and "CorruptRunError" in out
    assert main(["sweep", str(spec), "--store", str(store), "--dry-run"]) == 0
    assert "corrupt (fails; --recompute-corrupt)" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--store", str(store), "--no-progress", "--workers", "1",
                 "--recompute-corrupt"]) == 0
    assert "1 finished, 0 failed" in capsys.readouterr().out
    assert ResultStore(store).status(point.config.key_dict()) == ("stored", None)
    assert main(["sweep", str(spec), "--store", str(store), "--no-progress"]) == 0
    assert "1 skipped, 0 failed" in capsys.readouterr().out


def test_damaged_checkpoint_is_discarded_with_a_warning_and_the_run_restarts(tmp_path):
    from rmed_core.store import CorruptRunError, ResultStore
    from rmed_core.trainer import TrainConfig, _load_checkpoint, train

    cfg = TrainConfig(**FAST)
    reference = train(cfg, ResultStore(tmp_path / "ref"), progress=False)
    store = ResultStore(tmp_path / "s")
    d = store.run_dir(cfg.resolved().key_dict())
    d.mkdir(parents=True)
    (d / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CorruptRunError, match=r"checkpoint.pt: damaged checkpoint.*delete it to restart"):
        _load_checkpoint(d / "checkpoint.pt", {}, nn.Linear(1, 1), torch.optim.SGD([nn.Parameter(torch.ones(1))]),
                         torch.device("cpu"))
    with pytest.warns(RuntimeWarning, match=r"checkpoint.pt: damaged checkpoint.*discarded, the run starts again"):
        r = train(cfg, store, progress=False)
    assert r.loss.equals(reference.loss) and not (d / "checkpoint.pt").exists()


_TWO_WRITERS = """
import sys, json
from rmed_core.store import ResultStore
from rmed_core.trainer import TrainConfig, train
r = train(TrainConfig(task="ptb_lm", scale="ci", steps=40, probe_steps=(), probe_top_eig=False),
          ResultStore(sys.argv[1]), progress=False)
print(json.dumps({"from_store": r.from_store, "loss": r.loss["loss"].tolist()}))
"""


def test_two_processes_on_one_run_compute_it_once(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _TWO_WRITERS, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    results = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert sorted(r["from_store"] for r in results) == [False, True]  # one computed, one waited and reused
    assert results[0]["loss"] == results[1]["loss"]


def test_code_version_covers_every_computing_module():
    import ast
    from pathlib import Path

    from rmed_core import store as st

    pkg = Path(st.__file__).parent
    covered = {f.relative_to(pkg).as_posix() for f in st._package_files("runs")}
    assert "linear_net.py" in covered and "hessian/exact.py" in covered and "store.py" in covered
    assert set(st.NON_COMPUTING) <= {f.name for f in pkg.glob("*.py")}  # no stale entries
    # no covered module depends on one that is left out (its change would otherwise go unseen)
    left_out = {Path(n).stem for n in st.NON_COMPUTING}
    for rel in covered:
        tree = ast.parse((pkg / rel).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                names = [node.module or ""] + [a.name for a in node.names]
                assert not left_out & {n.split(".")[-1] for n in names if n}, (rel, names)


def test_every_torch_load_is_weights_only():
    import ast
    from pathlib import Path

    import rmed_core

    for f in Path(rmed_core.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" and \
                    getattr(node.func, "value", None) is not None and getattr(node.func.value, "id", None) == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, \
                    f"{f}:{node.lineno}"


def test_damaged_final_weights_name_the_file(tmp_path):
    from rmed_core.store import CorruptRunError, ResultStore
    from rmed_core.trainer import FINAL_MODEL, TrainConfig, final_model, train

    r = train(TrainConfig(**FAST), ResultStore(tmp_path), progress=False)
    (r.dir / FINAL_MODEL).write_bytes(b"garbage")
    with pytest.raises(CorruptRunError, match=rf"{FINAL_MODEL}: the stored weights cannot be read.*delete"):
        final_model(r)
