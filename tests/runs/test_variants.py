"""The design choices the study varies (initialisation, output bias, learning-rate schedule): each is
what its name says, the default reproduces the study's design point, runs stored before the options
existed keep their keys, and a task without the option refuses it by name."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rmed_core.models import TransformerLM
from rmed_core.optim import FINAL_FRACTION, schedule_factor
from rmed_core.runs.config import TrainConfig
from rmed_core.runs.store import ResultStore
from rmed_core.runs.trainer import train

FAST = dict(task="ptb_lm", scale="ci", steps=10, probe_steps=(0, 10), probe_top_eig=False)


def _params(**kw) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {n: p.detach().clone() for n, p in TransformerLM(500, d_model=32, n_layers=1, n_heads=2, **kw).named_parameters()}


def test_the_normal_initialisation_is_n_0_002_with_zero_biases_and_the_torch_one_is_pytorchs():
    normal, torch_ = _params(), _params(init="torch")
    assert normal["tok.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert normal["head.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(normal["blocks.0.attn.q.bias"]) == 0
    assert torch_["tok.weight"].std().item() == pytest.approx(1.0, rel=0.05)  # nn.Embedding: N(0, 1)
    bound = 1 / math.sqrt(32)  # nn.Linear: uniform on +-1/sqrt(fan_in) (kaiming_uniform with a=sqrt(5))
    assert torch_["head.weight"].abs().max().item() <= bound and torch_["head.weight"].std().item() == pytest.approx(
        bound / math.sqrt(3), rel=0.05)
    assert torch.count_nonzero(torch_["blocks.0.attn.q.bias"]) > 0
    assert set(normal) == set(torch_)


def test_the_default_model_is_the_study_models_design_point():
    # init="normal", no output bias: the same parameters, drawn in the same order, as the model had
    # before these options existed (the study's bundles were made by it)
    torch.manual_seed(0)
    ref = TransformerLM(500, d_model=32, n_layers=1, n_heads=2)
    for (n, a), (_, b) in zip(ref.named_parameters(), _params(init="normal", output_bias=False).items()):
        assert torch.equal(a.detach(), b), n
    assert "head.bias" not in dict(ref.named_parameters())
    biased = _params(output_bias=True)
    assert torch.count_nonzero(biased["head.bias"]) == 0 and biased["head.bias"].shape == (500,)
    assert torch.count_nonzero(_params(init="torch", output_bias=True)["head.bias"]) > 0


def test_warmup_cosine_rises_linearly_peaks_and_decays_to_its_floor():
    steps = 1250
    f = np.array([schedule_factor("warmup-cosine", t, steps) for t in range(steps)])
    warm = 125
    assert np.allclose(f[:warm], np.arange(1, warm + 1) / warm)
    assert f[warm] == pytest.approx(1.0) and f[-1] == pytest.approx(FINAL_FRACTION)
    assert np.all(np.diff(f[warm:]) <= 1e-15) and f[warm:].min() == pytest.approx(FINAL_FRACTION)
    assert all(schedule_factor("constant", t, steps) == 1.0 for t in (0, 600, 1249))
    with pytest.raises(ValueError, match="schedule="):
        schedule_factor("linear", 0, 10)
    with pytest.raises(ValueError, match="step="):
        schedule_factor("constant", 10, 10)


def test_options_at_their_defaults_leave_the_key_unchanged_and_others_change_it():
    base = TrainConfig(**FAST).key_dict()
    assert not {"init", "output_bias", "schedule"} & set(base)
    for field, value in (("init", "torch"), ("output_bias", True), ("schedule", "warmup-cosine")):
        key = TrainConfig(**FAST, **{field: value}).key_dict()
        assert key[field] == value and {k: v for k, v in key.items() if k != field} == base
        assert TrainConfig.from_dict(key).key_dict() == key


@pytest.mark.parametrize("field, value, allowed", [
    ("init", "xavier", "normal"), ("schedule", "step", "warmup-cosine"), ("output_bias", "yes", "True"),
])
def test_bad_options_fail_early_naming_the_field(field, value, allowed):
    with pytest.raises(ValueError, match=rf"(?s){field}=.*{allowed}"):
        TrainConfig(**{**FAST, field: value})


def test_a_task_without_the_model_option_refuses_it():
    with pytest.raises(ValueError, match=r"init='torch'.*mnist_cnn.*ptb_lm"):
        TrainConfig(task="mnist_cnn", init="torch")
    TrainConfig(task="mnist_cnn", schedule="warmup-cosine")  # the schedule is the trainer's: any task


def test_each_option_changes_the_run_and_the_default_is_the_design_point(tmp_path):
    store = ResultStore(tmp_path)
    runs = {name: train(TrainConfig(**FAST, opt="adam", **kw), store, progress=False)
            for name, kw in (("default", {}), ("explicit", dict(init="normal", output_bias=False, schedule="constant")),
                             ("torch", dict(init="torch")), ("bias", dict(output_bias=True)),
                             ("schedule", dict(schedule="warmup-cosine")))}
    assert runs["explicit"].from_store  # the same key as the default
    loss = {k: r.loss.loss.to_numpy() for k, r in runs.items()}
    assert loss["torch"][0] != loss["default"][0]  # another model at step 0
    assert loss["schedule"][0] == loss["default"][0] and not np.allclose(loss["schedule"][1:], loss["default"][1:])
    assert "head.bias" in set(runs["bias"].rmed.layer) and "head.bias" not in set(runs["default"].rmed.layer)
