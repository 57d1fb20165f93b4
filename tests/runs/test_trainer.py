"""The trainer: early validation, determinism, exact resume, divergence, store reuse."""
from __future__ import annotations

import pandas as pd
import pytest

from rmed_core.runs.store import ResultStore
from rmed_core.runs.results import load_results
from rmed_core.runs.config import TrainConfig
from rmed_core.runs.trainer import train

FAST = dict(task="ptb_lm", scale="ci", steps=10, probe_steps=(0, 10))


@pytest.mark.parametrize("field, value, allowed", [
    ("task", "imagenet", "ptb_lm"), ("opt", "lion", "sgdm"), ("scale", "huge", "book"),
    ("device", "tpu", "cpu"), ("lr", -1.0, "positive"), ("lr", 0, "positive"), ("steps", 0, "positive"),
    ("batch_size", -2, "positive"), ("probe_every", -1, "non-negative"), ("probe_method", "guess", "exact"),
])
def test_bad_fields_fail_early_naming_the_field(field, value, allowed):
    with pytest.raises(ValueError, match=rf"(?s){field}=.*{allowed}"):
        TrainConfig(**{field: value})


def test_resolved_fills_task_values():
    c = TrainConfig(task="ptb_lm", opt="adam", scale="ci").resolved()
    assert c.lr > 0 and c.steps == 20 and c.probe_steps == (0, 10, 20) and c.batch_size == 8
    assert "device" not in c.key_dict() and c.key_dict() == TrainConfig(device="cpu").key_dict()
    with pytest.raises(ValueError, match="lr=None.*signum"):
        TrainConfig(opt="signum").resolved()


def _tables(r) -> dict[str, pd.DataFrame]:
    return {"loss": r.loss, "rmed": r.rmed, "probe": r.probe[["step", "loss"]], "eig": r.eig}


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_exactly(tmp_path):
    cfg = TrainConfig(**{**FAST, "task": "mnist_cnn"}, opt="adam", checkpoint_every=4, probe_top_eig=True)
    full = train(cfg, ResultStore(tmp_path / "a"), progress=False)
    assert full.status == "finished" and not full.from_store
    assert full.loss["step"].tolist() == list(range(10))
    assert sorted(full.rmed["step"].unique()) == [0, 10] and len(full.eig) == 2

    store = ResultStore(tmp_path / "b")

    def kill_at_7(step: int, loss: float) -> None:
        if step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, store, progress=False, callback=kill_at_7)
    assert not store.has(cfg.key_dict()) and (store.run_dir(cfg.key_dict()) / "checkpoint.pt").is_file()
    assert load_results("loss", root=tmp_path / "b").empty  # the unfinished run is invisible
    seen = []
    resumed = train(cfg, store, progress=False, callback=lambda s, v: seen.append(s))
    assert seen == [4, 5, 6, 7, 8, 9]  # restarted at the checkpoint after step 3
    for kind, a in _tables(full).items():
        pd.testing.assert_frame_equal(a, _tables(resumed)[kind], check_exact=True, obj=kind)
    assert not (store.run_dir(cfg.key_dict()) / "checkpoint.pt").exists()


def test_stored_run_is_loaded_not_recomputed(tmp_path):
    store = ResultStore(tmp_path)
    cfg = TrainConfig(**{**FAST, "probe_steps": ()}, opt="sgdm")
    first = train(cfg, store, progress=False)
    again = train(cfg, store, progress=False, callback=lambda s, v: pytest.fail("recomputed"))
    assert again.from_store and again.loss.equals(first.loss)
    r = load_results("loss", root=tmp_path)
    assert {"task", "opt", "seed", "step", "loss", "lr", "scale", "diverged"} <= set(r.columns)


def test_diverging_lr_is_recorded_and_stops(tmp_path):
    store = ResultStore(tmp_path)
    r = train(TrainConfig(**{**FAST, "probe_steps": (0, 5, 10)}, opt="sgd", lr=1e8), store, progress=False)
    assert r.status == "diverged" and r.diverged
    assert bool(r.loss["diverged"].iloc[-1]) and not r.loss["diverged"].iloc[:-1].any()
    assert len(r.loss) < 11 and r.provenance["reason"]
    runs = load_results("runs", root=tmp_path)
    assert runs["status"].tolist() == ["diverged"]
    assert load_results("loss", root=tmp_path)["diverged"].any()


def test_rmed_table_names_layers_and_indices(tmp_path):
    r = train(TrainConfig(task="mnist_cnn", scale="ci", opt="adam", steps=2, probe_steps=(2,)), ResultStore(tmp_path),
              progress=False)
    assert r.rmed["layer"].tolist()[:2] == ["0.weight", "0.bias"] and r.rmed["index"].tolist() == [0, 1, 2, 3, 4, 5]
    assert (r.rmed["r_med"] >= 1).all() and set(r.rmed["method"]) == {"exact"}


def test_command_line_opt_is_a_list_of_names():
    from rmed_core.cli import _parser

    assert _parser().parse_args(["train"]).opt == ["adam"]
    assert _parser().parse_args(["train", "--opt", "adam", "sgdm"]).opt == ["adam", "sgdm"]
