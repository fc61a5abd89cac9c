"""Optional parity checks against real PyTorch (skipped when torch is not installed; torch is never
a dependency): a PyTorch state dict converted to numpy loads unchanged and gives the same outputs
and gradients, and optimizers/schedulers produce the same parameters step by step."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
import tracejit.nn.functional as F
from tracejit import nn

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(5)


def _pair(build):
    torch.manual_seed(0)
    tm = build(torch.nn).double()
    jm = build(nn).double()
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(sd) == list(jm.state_dict())
    jm.load_state_dict(sd)
    return tm, jm


class _Model:
    """The same architecture for either library (`lib` is torch.nn or tracejit.nn)."""

    @staticmethod
    def cnn(lib):
        return lib.Sequential(lib.Conv2d(3, 6, 3, stride=2, padding=1), lib.BatchNorm2d(6),
                              lib.ReLU(), lib.MaxPool2d(2, ceil_mode=True),
                              lib.AvgPool2d(2, padding=1, count_include_pad=False),
                              lib.Flatten(), lib.Linear(6 * 2 * 2, 5), lib.LayerNorm(5),
                              lib.GELU("tanh"), lib.Dropout(0.0), lib.Linear(5, 3))


def _compare(tout, jout, tparams, jparams, tx=None, jx=None):
    np.testing.assert_allclose(jout.detach().numpy(), tout.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    g = RNG.standard_normal(tuple(tout.shape))
    tout.backward(torch.tensor(g))
    jout.backward(tj.tensor(g))
    for (name, a), b in zip(tparams, jparams):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    if tx is not None:
        np.testing.assert_allclose(jx.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("train", [True, False])
def test_cnn_from_a_converted_pytorch_state_dict(train):
    tm, jm = _pair(_Model.cnn)
    tm.train(train)
    jm.train(train)
    x = RNG.standard_normal((4, 3, 11, 9))
    tx, jx = torch.tensor(x, requires_grad=True), tj.tensor(x, requires_grad=True)
    _compare(tm(tx), jm(jx), tm.named_parameters(), jm.parameters(), tx, jx)
    for (k, a), b in zip(tm.state_dict().items(), jm.state_dict().values()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_recurrent_from_a_converted_pytorch_state_dict(cls):
    tm, jm = _pair(lambda lib: getattr(lib, cls)(4, 5, num_layers=2, batch_first=True,
                                                 bidirectional=True))
    x = RNG.standard_normal((3, 6, 4))
    tx, jx = torch.tensor(x, requires_grad=True), tj.tensor(x, requires_grad=True)
    _compare(tm(tx)[0], jm(jx)[0], tm.named_parameters(), jm.parameters(), tx, jx)


def test_losses_match_pytorch():
    x = RNG.standard_normal((6, 4)) * 3
    t = np.array([0, 3, 1, -100, 2, 2])
    w = RNG.random(4) + 0.5
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.3}, {"weight": w, "label_smoothing": 0.1,
                                                             "reduction": "sum"}):
        tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        jk = {k: tj.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        a = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t), **tk)
        b = F.cross_entropy(tj.tensor(x), tj.tensor(t), **jk)
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-12, err_msg=str(kw))


OPTIMIZERS = [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.2}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "betas": (0.8, 0.95)}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5}),
]


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_optimizers_match_pytorch_step_by_step(name, kw):
    w0 = RNG.standard_normal((4, 3)).astype(np.float32)
    grads = [RNG.standard_normal((4, 3)).astype(np.float32) for _ in range(6)]
    tp, jp = torch.tensor(w0, requires_grad=True), tj.tensor(w0, requires_grad=True)
    to, jo = getattr(torch.optim, name)([tp], **kw), getattr(tj.optim, name)([jp], **kw)
    ts = torch.optim.lr_scheduler.CosineAnnealingLR(to, T_max=3)
    js = tj.optim.lr_scheduler.CosineAnnealingLR(jo, T_max=3)
    for g in grads[:4]:
        tp.grad, jp.grad = torch.tensor(g), tj.tensor(g)
        to.step()
        jo.step()
        ts.step()
        js.step()
        assert js.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        np.testing.assert_allclose(jp.detach().numpy(), tp.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    # PyTorch's optimizer state, converted to numpy, resumes in tracejit
    sd = to.state_dict()
    conv = {"state": {i: {k: v.numpy() if torch.is_tensor(v) else v for k, v in s.items()}
                      for i, s in sd["state"].items()}, "param_groups": sd["param_groups"]}
    jp2 = tj.tensor(tp.detach().numpy(), requires_grad=True)
    jo2 = getattr(tj.optim, name)([jp2], **kw)
    jo2.load_state_dict(conv)
    for g in grads[4:]:
        tp.grad, jp2.grad = torch.tensor(g), tj.tensor(g)
        to.step()
        jo2.step()
    np.testing.assert_allclose(jp2.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_default_init_distribution_matches_pytorch():
    torch.manual_seed(0)
    tj.manual_seed(0)
    for build in (lambda lib: lib.Linear(400, 300), lambda lib: lib.Conv2d(8, 16, 5, groups=2),
                  lambda lib: lib.LSTM(50, 100), lambda lib: lib.Embedding(500, 64)):
        tm, jm = build(torch.nn), build(nn)
        for (k, a), b in zip(tm.named_parameters(), jm.parameters()):
            a, b = a.detach().numpy(), b.detach().numpy()
            assert a.shape == b.shape, k
            tol = max(0.03, 4 / np.sqrt(a.size))          # sampling error of a std
            assert abs(a.std() - b.std()) < tol * a.std(), k
            assert abs(np.abs(a).max() - np.abs(b).max()) < 0.1 * np.abs(a).max(), k
