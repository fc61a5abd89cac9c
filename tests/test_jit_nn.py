"""Compiled nn.Modules: the same parameter objects, training identical to eager, buffers
(BatchNorm running stats) written back."""
import numpy as np
import pytest

import tracejit as tj
import tracejit.nn.functional as F
from tracejit.jit.backends import default_backend

BACKENDS = ["interpret"] + (["llvm"] if default_backend() == "llvm" else [])


def _model(seed=0):
    tj.manual_seed(seed)
    return tj.nn.Sequential(tj.nn.Linear(8, 16), tj.nn.BatchNorm1d(16), tj.nn.GELU("tanh"),
                            tj.nn.Linear(16, 16), tj.nn.LayerNorm(16), tj.nn.ReLU(),
                            tj.nn.Linear(16, 4))


def _train(model, fwd, steps=4):
    opt = tj.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        x = tj.tensor(rng.standard_normal((32, 8)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 4, 32))
        opt.zero_grad()
        loss = F.cross_entropy(fwd(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_module_trains_like_eager(backend):
    eager = _model()
    comp = _model()
    comp.load_state_dict(eager.state_dict())
    cm = tj.compile(comp, backend=backend)
    assert list(cm.parameters())[0] is list(comp.parameters())[0]
    le = _train(eager, eager)
    lc = _train(comp, cm)
    np.testing.assert_allclose(lc, le, rtol=1e-4, atol=1e-5)
    for (n, a), (_, b) in zip(eager.state_dict().items(), comp.state_dict().items()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5, err_msg=n)
    assert cm._compiled.compiles == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_loss_function_over_module(backend):
    model = _model(1)
    ref = _model(1)

    @tj.compile(backend=backend)
    def loss_fn(x, y):
        return F.cross_entropy(model(x), y, label_smoothing=0.1)

    le = _train(ref, lambda x: ref(x), steps=3)
    rng = np.random.default_rng(0)
    opt = tj.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    lc = []
    for _ in range(3):
        x = tj.tensor(rng.standard_normal((32, 8)).astype(np.float32))
        y = tj.tensor(rng.integers(0, 4, 32))
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
        lc.append(loss.item())
    assert len(lc) == len(le)


@pytest.mark.parametrize("backend", BACKENDS)
def test_eval_mode_retraces_and_uses_running_stats(backend):
    m = _model(2)
    cm = tj.compile(m, backend=backend)
    x = tj.randn(16, 8)
    with tj.no_grad():
        cm(x)
        m.eval()
        got = cm(x)
        want = m(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_function_closing_over_module_guards_training_flag(backend):
    m = _model(3)
    f = tj.compile(lambda x: m(x).sum(), backend=backend)
    x = tj.randn(16, 8)
    with tj.no_grad():
        f(x)
        m.eval()
        got = f(x).item()
        want = m(x).sum().item()
        m.train()
        f(x)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-5)
    assert f.compiles == 2  # train and eval, each compiled once
