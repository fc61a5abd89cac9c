"""Layers (Linear, LayerNorm, BatchNorm1d/2d, Embedding, Flatten, Dropout) against their
definitions in float64 with finite-difference gradients, and PyTorch's default initialisation
(distributions, bounds, fan rules) plus the tj.nn.init functions."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, check_grads

import tracejit as tj
from tracejit import nn
from tracejit.nn import init

RNG = np.random.default_rng(3)


def module_grads(module, x):
    """check_grads over the input and every parameter of `module` (float64)."""
    names = [n for n, _ in module.named_parameters()]

    def fn(x, *params):
        for name, p in zip(names, params):
            sub, _, leaf = name.rpartition(".")
            module.get_submodule(sub)._parameters[leaf] = p
        return module(x)
    check_grads(fn, [x] + [p.detach().numpy().copy() for p in module.parameters()])


def test_linear():
    tj.manual_seed(0)
    lin = nn.Linear(5, 3).double()
    x = RNG.standard_normal((2, 4, 5))
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    assert_close(lin(tj.tensor(x)).detach().numpy(), x @ w.T + b)
    module_grads(lin, x[0])
    assert nn.Linear(5, 3, bias=False).bias is None
    assert list(nn.Linear(5, 3, bias=False).state_dict()) == ["weight"]
    with pytest.raises(RuntimeError, match="cannot be multiplied"):
        lin(tj.randn(2, 4, dtype=tj.float64))


def test_layer_norm_module():
    ln = nn.LayerNorm([2, 3]).double()
    with tj.no_grad():
        ln.weight.copy_(tj.tensor(RNG.standard_normal((2, 3))))
        ln.bias.copy_(tj.tensor(RNG.standard_normal((2, 3))))
    x = RNG.standard_normal((4, 2, 3))
    mu, var = x.mean((1, 2), keepdims=True), x.var((1, 2), keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-5) * ln.weight.detach().numpy() + ln.bias.detach().numpy()
    assert_close(ln(tj.tensor(x)).detach().numpy(), ref)
    module_grads(ln, x)
    assert list(nn.LayerNorm(4, elementwise_affine=False).state_dict()) == []
    assert repr(ln) == "LayerNorm((2, 3), eps=1e-05, elementwise_affine=True, bias=True)"


def test_batch_norm2d_running_stats_and_eval():
    bn = nn.BatchNorm2d(3).double()
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    xs = [RNG.standard_normal((4, 3, 2, 2)) * 2 + 1 for _ in range(3)]
    rm, rv = np.zeros(3), np.ones(3)
    for x in xs:
        out = bn(tj.tensor(x)).detach().numpy()
        mu, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
        assert_close(out, (x - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5))
        rm = 0.9 * rm + 0.1 * mu
        rv = 0.9 * rv + 0.1 * x.var((0, 2, 3), ddof=1)
    assert_close(bn.running_mean.numpy(), rm)
    assert_close(bn.running_var.numpy(), rv)
    assert bn.num_batches_tracked.item() == 3
    bn.eval()
    x = xs[0]
    assert_close(bn(tj.tensor(x)).detach().numpy(),
                 (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5))
    assert bn.num_batches_tracked.item() == 3          # eval does not count
    module_grads(nn.BatchNorm2d(3).double(), xs[0][:2])
    with pytest.raises(ValueError, match="expected 4D input"):
        bn(tj.randn(4, 3))


def test_batch_norm1d_cumulative_average_and_no_tracking():
    bn = nn.BatchNorm1d(2, momentum=None).double()
    xs = [RNG.standard_normal((5, 2)) for _ in range(3)]
    for x in xs:
        bn(tj.tensor(x))
    assert_close(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0))
    free = nn.BatchNorm1d(2, track_running_stats=False).double()
    assert list(free.state_dict()) == ["weight", "bias"]
    free.eval()                                      # still uses batch statistics
    x = RNG.standard_normal((6, 2, 3))
    mu, var = x.mean((0, 2)), x.var((0, 2))
    assert_close(free(tj.tensor(x)).detach().numpy(),
                 (x - mu[:, None]) / np.sqrt(var[:, None] + 1e-5))
    assert nn.BatchNorm1d(2, affine=False).weight is None


def test_embedding_module():
    tj.manual_seed(0)
    emb = nn.Embedding(1000, 8, padding_idx=3)
    w = emb.weight.detach().numpy()
    assert (w[3] == 0).all()
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05      # N(0, 1)
    idx = tj.tensor([[3, 4], [5, 3]])
    assert (emb(idx).detach().numpy() == w[idx.numpy()]).all()
    emb(idx).sum().backward()
    assert (emb.weight.grad.numpy()[3] == 0).all()
    pre = nn.Embedding.from_pretrained(tj.ones(4, 2))
    assert not pre.weight.requires_grad and pre(tj.tensor([1])).tolist() == [[1.0, 1.0]]
    assert repr(emb) == "Embedding(1000, 8, padding_idx=3)"


def test_flatten_unflatten_identity_dropout_modules():
    x = tj.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Identity(54, unused=1)(x) is x
    assert repr(nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


# --- initialisation ---


def _uniform_ok(t, bound):
    a = t.detach().numpy()
    return np.abs(a).max() <= bound * (1 + 1e-6) and abs(a.std() - bound / math.sqrt(3)) < \
        0.05 * bound


def test_default_inits_follow_pytorch():
    tj.manual_seed(0)
    lin = nn.Linear(300, 200)
    assert _uniform_ok(lin.weight, 1 / math.sqrt(300))
    assert _uniform_ok(lin.bias, 1 / math.sqrt(300))
    conv = nn.Conv2d(16, 32, 3, groups=2)
    assert _uniform_ok(conv.weight, 1 / math.sqrt(8 * 9))      # fan_in = in/groups * kh * kw
    ln, bn = nn.LayerNorm(4), nn.BatchNorm1d(4)
    assert ln.weight.tolist() == [1.0] * 4 and ln.bias.tolist() == [0.0] * 4
    assert bn.running_var.tolist() == [1.0] * 4 and bn.num_batches_tracked.dtype is tj.int64
    rnn = nn.GRU(30, 400)
    assert all(_uniform_ok(p, 1 / 20) for p in rnn.parameters())


def test_init_functions():
    tj.manual_seed(0)
    t = tj.empty(400, 300)
    assert init.calculate_gain("relu") == math.sqrt(2)
    assert init.calculate_gain("tanh") == 5 / 3
    assert init.calculate_gain("leaky_relu", 0.2) == math.sqrt(2 / 1.04)
    assert _uniform_ok(init.xavier_uniform_(t, gain=2.0), 2 * math.sqrt(6 / 700))
    std = init.xavier_normal_(t).numpy().std()
    assert abs(std - math.sqrt(2 / 700)) < 0.02 * std
    assert _uniform_ok(init.kaiming_uniform_(t, nonlinearity="relu"), math.sqrt(6 / 300))
    std = init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu").numpy().std()
    assert abs(std - math.sqrt(2 / 400)) < 0.02 * std
    a = init.uniform_(tj.empty(10000), -2.0, 3.0).numpy()
    assert a.min() >= -2 and a.max() <= 3 and abs(a.mean() - 0.5) < 0.05
    a = init.normal_(tj.empty(10000), 1.0, 0.5).numpy()
    assert abs(a.mean() - 1) < 0.02 and abs(a.std() - 0.5) < 0.02
    a = init.trunc_normal_(tj.empty(10000), std=0.5, a=-0.5, b=0.5).numpy()
    assert a.min() >= -0.5 and a.max() <= 0.5 and abs(a.mean()) < 0.02
    assert init.constant_(tj.empty(2), 0.3).tolist() == pytest.approx([0.3, 0.3])
    assert init.ones_(tj.empty(2)).tolist() == [1.0, 1.0]
    assert init.zeros_(tj.empty(2)).tolist() == [0.0, 0.0]
    p = nn.Parameter(tj.empty(2, 2))
    init.eye_(p)                                    # works on leaves that require grad
    assert p.tolist() == [[1.0, 0.0], [0.0, 1.0]] and p.requires_grad
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(tj.empty(3))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
