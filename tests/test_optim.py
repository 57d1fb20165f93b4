import pytest
import torch

from rmed_core import make_optimizer, optimizer_names
from rmed_core.optim import Signum


def test_registry_names():
    assert {"gd", "sgd", "sgdm", "adam", "adamw", "adagrad", "rmsprop", "signum", "signgd"} <= set(optimizer_names())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match=r"opt='lamb'.*valid names: adagrad, adam"):
        make_optimizer("lamb", [torch.zeros(1, requires_grad=True)], lr=0.1)


@pytest.mark.parametrize("lr", [0, -1.0, "0.1"])
def test_bad_learning_rate(lr):
    with pytest.raises(ValueError, match="lr="):
        make_optimizer("adam", [torch.zeros(1, requires_grad=True)], lr=lr)


def test_sgdm_has_momentum_and_signgd_is_sign_descent():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    assert make_optimizer("sgdm", [p], lr=0.1).param_groups[0]["momentum"] == 0.9
    opt = make_optimizer("signgd", [p], lr=0.5)
    assert isinstance(opt, Signum)
    p.grad = torch.tensor([3.0, -0.01])
    opt.step()
    assert torch.equal(p.detach(), torch.tensor([0.5, -1.5]))


def test_signum_momentum_buffer():
    p = torch.zeros(1, requires_grad=True)
    opt = make_optimizer("signum", [p], lr=1.0)
    for g in (1.0, -0.5):  # buffer: 0.1, then 0.09 - 0.05 = 0.04 > 0
        p.grad = torch.tensor([g])
        opt.step()
    assert float(p.detach()) == -2.0
