"""The task registry: names, scales, sizes, learning rates."""
from __future__ import annotations

import pytest
import torch

from rmed_core import tasks
from rmed_core.optim import optimizer_names


def test_unknown_task_and_scale_list_valid_values():
    with pytest.raises(ValueError, match="task='cifar'.*mnist_cnn.*ptb_lm"):
        tasks.get_task("cifar")
    with pytest.raises(ValueError, match="scale='tiny'.*ci, book, study, study-10k, paper"):
        tasks.get_task("ptb_lm").spec("tiny")
    with pytest.raises(ValueError, match="scale='study'.*'polarity_cls'.*ci, book, paper"):
        tasks.get_task("polarity_cls").spec("study")


def test_registry_has_the_experiments_and_every_scale():
    assert {"ptb_lm", "polarity_cls", "mnist_cnn", "fashion_cnn"} <= set(tasks.task_names())
    assert tasks.DEFAULT_TASK == "ptb_lm"
    for task in tasks.TASKS.values():
        assert {"ci", "book", "paper"} <= set(task.scales) <= set(tasks.SCALES)
        for scale in task.scales:
            s = task.spec(scale)
            assert s.steps > 0 and s.batch_size > 0 and s.hessian_batch > 0 and s.probe_every >= 0


def test_the_study_scales():
    """The word-level study (2,000 words and the full vocabulary) and its CNN control."""
    lm = tasks.get_task("ptb_lm")
    for scale in ("study", "study-10k"):
        s = lm.spec(scale)
        assert s.data["level"] == "word" and s.data["seq_len"] >= 32 and s.model["d_model"] >= 64
        assert s.model["n_layers"] >= 2 and s.model["n_heads"] >= 4 and s.batch_size >= 32 and s.steps >= 1250
        assert s.hessian_batch * s.data["seq_len"] >= 512 and s.probe_method == "sampled"
    assert lm.spec("study").data["max_vocab"] == 2000 and lm.spec("study-10k").data["max_vocab"] is None
    assert tasks.get_task("mnist_cnn").spec("study").steps == lm.spec("study").steps


def test_tuned_lrs_lie_on_the_grid():
    for name, by_scale in tasks.TUNED_LR.items():
        tasks.get_task(name)
        for scale, lrs in by_scale.items():
            tasks.check_scale(scale)
            for opt, lr in lrs.items():
                assert opt in optimizer_names() and lr in tasks.LR_GRID
    assert tasks.get_task("ptb_lm").default_lr("adam", "ci") == tasks.TUNED_LR["ptb_lm"]["ci"]["adam"]


@pytest.mark.parametrize("name", ["ptb_lm", "polarity_cls", "mnist_cnn"])
def test_ci_models_run_on_their_data(name):
    from rmed_core.data.sentences import polarity_path
    if name == "polarity_cls" and not polarity_path().is_file():
        pytest.skip("polarity data not fetched (python -m rmed_core.data.fetch)")
    task = tasks.get_task(name)
    data = task.data("ci")
    torch.manual_seed(0)
    model = task.model("ci", data)
    x, y = data.batch(0, seed=0, batch_size=task.spec("ci").batch_size)
    loss = task.loss_fn(model(x), y)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_paper_scale_transformer_has_more_than_22_tensors():
    spec = tasks.get_task("ptb_lm").spec("paper")
    from rmed_core.models import TransformerLM
    m = TransformerLM(100, seq_len=spec.data["seq_len"], **spec.model)
    assert len(list(m.parameters())) > 22 and spec.steps >= 1250 and spec.data["level"] == "word"
