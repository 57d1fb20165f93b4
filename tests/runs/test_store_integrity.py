"""Bad input to runs and the store: a config refused by field, a probe batch too large for memory
refused before training, and a store that proves what it serves -- edited, truncated or garbled
files named, damaged checkpoints discarded, one writer per run, a code version that covers every
computing module, and weights read only with ``weights_only=True``."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn


@pytest.mark.parametrize("field, value, words", [
    ("seed", 2**70, r"seed=1180591620717411303424: expected an integer in \[0, 2\*\*63\)"),
    ("seed", -1, "seed=-1: expected an integer"),
    ("steps", 3.0, r"steps=3.0: expected a positive integer \(got a float\)"),
    ("hessian_batch", 8.0, "hessian_batch=8.0: expected a positive integer"),
    ("probe_top_eig", "no", "probe_top_eig='no': expected True or False"),
])
def test_train_config_refuses(field, value, words):
    from rmed_core.runs.config import TrainConfig

    with pytest.raises(ValueError, match=words):
        TrainConfig(**{field: value})


def test_probe_batch_too_large_for_memory_is_refused_before_training(tmp_path):
    from rmed_core.runs.store import ResultStore
    from rmed_core.runs.config import TrainConfig
    from rmed_core.runs.trainer import train

    steps = []
    with pytest.raises(ValueError, match=r"hessian_batch=1000000000 \(the probe batch\).*too large for memory"):
        train(TrainConfig(task="ptb_lm", scale="ci", steps=2, hessian_batch=10**9), ResultStore(tmp_path),
              progress=False, callback=lambda s, loss: steps.append(s))
    assert not steps  # not one training step was taken


# ---- (5) the store proves what it serves ---------------------------------------------------------
FAST = dict(task="ptb_lm", scale="ci", steps=3, probe_steps=(), probe_top_eig=False)


def _stored_run(root, **kw):
    from rmed_core.runs.store import ResultStore
    from rmed_core.runs.config import TrainConfig
    from rmed_core.runs.trainer import train

    r = train(TrainConfig(**{**FAST, **kw}), ResultStore(root), progress=False)
    return r.config, r.dir


def _edit_one_digit(path):
    text = path.read_text()
    i = next(i for i, c in enumerate(text) if c.isdigit() and i > text.index("\n"))
    path.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])  # same size, one digit


def test_same_size_edit_is_detected_and_the_run_isolated(tmp_path):
    from rmed_core.runs.store import CorruptRunError, CorruptRunWarning, ResultStore
    from rmed_core.runs.results import load_results

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
    from rmed_core.runs.store import CorruptRunError, CorruptRunWarning, ResultStore
    from rmed_core.runs.results import load_results
    from rmed_core.runs.trainer import train

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
    from rmed_core.runs.store import ResultStore
    from rmed_core.runs.sweep import run_point
    from rmed_core.runs.sweep_spec import load_spec

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
    from rmed_core.runs.store import CorruptRunError, ResultStore
    from rmed_core.runs.config import TrainConfig
    from rmed_core.runs.checkpoint import load_checkpoint
    from rmed_core.runs.trainer import train

    cfg = TrainConfig(**FAST)
    reference = train(cfg, ResultStore(tmp_path / "ref"), progress=False)
    store = ResultStore(tmp_path / "s")
    d = store.run_dir(cfg.resolved().key_dict())
    d.mkdir(parents=True)
    (d / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CorruptRunError, match=r"checkpoint.pt: damaged checkpoint.*delete it to restart"):
        load_checkpoint(d / "checkpoint.pt", {}, nn.Linear(1, 1), torch.optim.SGD([nn.Parameter(torch.ones(1))]),
                        torch.device("cpu"))
    with pytest.warns(RuntimeWarning, match=r"checkpoint.pt: damaged checkpoint.*discarded, the run starts again"):
        r = train(cfg, store, progress=False)
    assert r.loss.equals(reference.loss) and not (d / "checkpoint.pt").exists()


_TWO_WRITERS = """
import sys, json
from rmed_core.runs.store import ResultStore
from rmed_core.runs.config import TrainConfig
from rmed_core.runs.trainer import train
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

    import rmed_core
    from rmed_core.runs import code_version as cv

    pkg = Path(rmed_core.__file__).parent
    modules = {f.relative_to(pkg).as_posix() for f in pkg.rglob("*.py") if "__pycache__" not in f.parts}
    covered = {f.relative_to(pkg).as_posix() for f in cv._package_files("runs")}
    assert {"linear_net.py", "hessian/exact.py", "runs/store.py", "runs/trainer.py", "models.py"} <= covered
    assert not covered & {"study/verdict.py", "book/plots.py", "runs/sweep.py", "cli.py"}
    for entry in cv.NON_COMPUTING:  # no stale entries
        assert entry in modules or (entry.endswith("/") and any(m.startswith(entry) for m in modules)), entry

    def target(rel: str, node: ast.ImportFrom) -> list[str]:
        """The modules (paths below rmed_core) a relative import of module ``rel`` names."""
        base = Path(rel).parent.parts[: len(Path(rel).parent.parts) - (node.level - 1)]
        stem = "/".join([*base, *(node.module or "").split(".")]).strip("/")
        names = [stem + ".py", stem + "/__init__.py"] + [f"{stem}/{a.name}.py" for a in node.names]
        return [n for n in names if n in modules]

    # no covered module depends on one that is left out (its change would otherwise go unseen)
    for rel in covered:
        for node in ast.walk(ast.parse((pkg / rel).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                for dep in target(rel, node):
                    assert cv.is_covered(dep), (rel, dep)


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
    from rmed_core.runs.store import CorruptRunError, ResultStore
    from rmed_core.runs.trainer import FINAL_MODEL, final_model, train
    from rmed_core.runs.config import TrainConfig

    r = train(TrainConfig(**FAST), ResultStore(tmp_path), progress=False)
    (r.dir / FINAL_MODEL).write_bytes(b"garbage")
    with pytest.raises(CorruptRunError, match=rf"{FINAL_MODEL}: the stored weights cannot be read.*delete"):
        final_model(r)
