"""Conv1d, GroupNorm, HuberLoss, SmoothL1Loss and KLDivLoss against their definitions in float64
numpy (forward) and central finite differences (backward), with PyTorch's argument errors and
reprs; a parity check against real PyTorch runs only where torch is installed."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from conftest import assert_close, check_grads

import tracejit as tj
import tracejit.nn.functional as F
from tracejit import nn

RNG = np.random.default_rng(3)


# --- Conv1d ---


def ref_conv1d(x, w, b, stride, padding, dilation, groups):
    n, c, length = x.shape
    o, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding)))
    lo = (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    out = np.zeros((n, o, lo))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(lo):
            for ci in range(cg):
                for a in range(k):
                    out[:, oc, i] += xp[:, g * cg + ci, i * stride + a * dilation] * w[oc, ci, a]
        if b is not None:
            out[:, oc] += b[oc]
    return out


@pytest.mark.parametrize("stride,padding,dilation,groups,bias", [
    (1, 0, 1, 1, True), (2, 1, 2, 2, False), (3, 2, 1, 1, True)])
def test_conv1d_module_matches_definition(stride, padding, dilation, groups, bias):
    conv = nn.Conv1d(4, 6, 3, stride=stride, padding=padding, dilation=dilation,
                     groups=groups, bias=bias, dtype=tj.float64)
    assert tuple(conv.weight.shape) == (6, 4 // groups, 3)
    assert list(conv.state_dict()) == (["weight", "bias"] if bias else ["weight"])
    x = RNG.standard_normal((2, 4, 11))
    w = conv.weight.detach().numpy()
    b = conv.bias.detach().numpy() if bias else None
    ref = ref_conv1d(x, w, b, stride, padding, dilation, groups)
    assert_close(conv(tj.tensor(x)).detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    # unbatched (C, L) input
    assert_close(conv(tj.tensor(x[0])).detach().numpy(), ref[0], rtol=1e-12, atol=1e-12)
    check_grads(lambda x, w: F.conv1d(x, w, None, stride, padding, dilation, groups),
                [x[:1], w])


def test_conv1d_init_repr_and_errors():
    tj.manual_seed(0)
    conv = nn.Conv1d(8, 16, 5)
    bound = 1 / math.sqrt(8 * 5)      # kaiming_uniform(a=sqrt(5)) and the bias: 1/sqrt(fan_in)
    assert np.abs(conv.weight.detach().numpy()).max() <= bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    assert repr(conv) == "Conv1d(8, 16, kernel_size=(5,), stride=(1,))"
    assert repr(nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False)) == \
        ("Conv1d(2, 4, kernel_size=(3,), stride=(2,), padding=(1,), dilation=(2,), groups=2, "
         "bias=False)")
    same = nn.Conv1d(2, 4, 3, padding="same")
    assert repr(same) == "Conv1d(2, 4, kernel_size=(3,), stride=(1,), padding=same)"
    assert same(tj.randn(1, 2, 7)).shape == (1, 4, 7)
    assert repr(nn.Conv2d(2, 4, 3, padding="same")).endswith("padding=same)")
    with pytest.raises(RuntimeError, match=r"Expected 2D \(unbatched\) or 3D \(batched\) input "
                       r"to conv1d, but got input of size: \[1, 2, 2, 5\]"):
        conv(tj.randn(1, 2, 2, 5))
    with pytest.raises(RuntimeError, match=r"Given groups=1, weight of size \[16, 8, 5\], "
                       r"expected input\[1, 3, 9\] to have 8 channels, but got 3 channels"):
        conv(tj.randn(3, 9))
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv1d(3, 4, 3, groups=2)
    with pytest.raises(NotImplementedError, match="Conv1d: padding_mode 'reflect'"):
        nn.Conv1d(2, 4, 3, padding_mode="reflect")


# --- GroupNorm ---


def ref_group_norm(x, g, w=None, b=None, eps=1e-5):
    n, c = x.shape[:2]
    xg = x.reshape(n, g, -1)
    mean = xg.mean(-1, keepdims=True)
    var = xg.var(-1, keepdims=True)
    out = ((xg - mean) / np.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    if w is not None:
        out = out * w.reshape(shape)
    if b is not None:
        out = out + b.reshape(shape)
    return out


@pytest.mark.parametrize("shape,groups", [((3, 6, 5), 3), ((2, 4), 2), ((2, 6, 3, 2), 1),
                                          ((2, 6, 3, 2), 6)])
def test_group_norm_matches_definition_and_grads(shape, groups):
    x = RNG.standard_normal(shape) * 3 + 1
    c = shape[1]
    w, b = RNG.standard_normal(c), RNG.standard_normal(c)
    got = F.group_norm(tj.tensor(x), groups, tj.tensor(w), tj.tensor(b), eps=1e-3)
    assert_close(got.numpy(), ref_group_norm(x, groups, w, b, 1e-3), rtol=1e-10, atol=1e-12)
    assert_close(F.group_norm(tj.tensor(x), groups).numpy(), ref_group_norm(x, groups),
                 rtol=1e-10, atol=1e-12)
    check_grads(lambda x, w, b: F.group_norm(x, groups, w, b, 1e-3), [x, w, b])
    check_grads(lambda x: F.group_norm(x, groups), [x])


def test_group_norm_module():
    gn = nn.GroupNorm(2, 4)
    assert [(k, tuple(v.shape)) for k, v in gn.state_dict().items()] == \
        [("weight", (4,)), ("bias", (4,))]
    assert (gn.weight.detach().numpy() == 1).all() and (gn.bias.detach().numpy() == 0).all()
    assert repr(gn) == "GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)"
    plain = nn.GroupNorm(2, 4, eps=1e-3, affine=False)
    assert repr(plain) == "GroupNorm(2, 4, eps=0.001, affine=False, bias=False)"
    assert list(plain.state_dict()) == [] and plain.weight is None
    assert list(nn.GroupNorm(2, 4, bias=False).state_dict()) == ["weight"]
    x = RNG.standard_normal((3, 4, 5))
    assert_close(plain(tj.tensor(x)).numpy(), ref_group_norm(x, 2, eps=1e-3), rtol=1e-10)
    # training and eval compute the same thing (no running statistics)
    y = gn(tj.tensor(x))
    gn.eval()
    assert_close(gn(tj.tensor(x)).detach().numpy(), y.detach().numpy())
    y.sum().backward()
    assert gn.weight.grad is not None and gn.bias.grad.shape == (4,)


def test_group_norm_errors():
    with pytest.raises(ValueError, match=r"num_channels \(4\) must be divisible by num_groups "
                       r"\(3\)"):
        nn.GroupNorm(3, 4)
    with pytest.raises(RuntimeError, match="divisible by num_groups, but got input of shape "
                       r"\[2, 4, 3\] and num_groups=3"):
        F.group_norm(tj.randn(2, 4, 3), 3)
    with pytest.raises(RuntimeError, match=r"Expected weight to be a vector of size equal to "
                       r"the number of channels in input, but got weight of shape \[4\]"):
        nn.GroupNorm(2, 4)(tj.randn(2, 6, 3))
    with pytest.raises(RuntimeError, match="Expected at least 2 dimensions for input tensor "
                       "but received 1"):
        F.group_norm(tj.randn(4), 2)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        F.group_norm(tj.randn(1, 4), 4)


# --- Huber, SmoothL1, KLDiv ---


def ref_huber(d, delta):
    a = np.abs(d)
    return np.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))


def _reduce(loss, reduction):
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("delta", [1.0, 0.4, 2.5])
def test_huber_and_smooth_l1(reduction, delta):
    x, t = RNG.standard_normal((4, 5)) * 2, RNG.standard_normal((4, 5)) * 2
    d = x - t
    ref = _reduce(ref_huber(d, delta), reduction)
    got = F.huber_loss(tj.tensor(x), tj.tensor(t), reduction, delta)
    assert_close(got.numpy(), ref, rtol=1e-12)
    mod = nn.HuberLoss(reduction=reduction, delta=delta)
    assert_close(mod(tj.tensor(x), tj.tensor(t)).numpy(), ref, rtol=1e-12)
    check_grads(lambda x, t: F.huber_loss(x, t, reduction, delta), [x, t])
    # smooth L1 is huber / beta
    sl1 = nn.SmoothL1Loss(reduction=reduction, beta=delta)(tj.tensor(x), tj.tensor(t))
    assert_close(sl1.numpy(), ref / delta, rtol=1e-12)
    w = RNG.uniform(0.1, 2.0, (4, 5))
    assert_close(F.huber_loss(tj.tensor(x), tj.tensor(t), reduction, delta, tj.tensor(w)).numpy(),
                 _reduce(ref_huber(d, delta) * w, reduction), rtol=1e-12)


def test_huber_gradient_at_the_kink_and_errors():
    # |d| = delta: both pieces meet with slope delta; d = 0: slope 0
    x = tj.tensor([1.0, -1.0, 0.0, 3.0], requires_grad=True)
    F.huber_loss(x, tj.zeros(4), "sum", 1.0).backward()
    assert x.grad.tolist() == [1.0, -1.0, 0.0, 1.0]
    assert repr(nn.HuberLoss()) == "HuberLoss()"
    with pytest.raises(RuntimeError, match="huber_loss does not support non-positive values "
                       "for delta."):
        F.huber_loss(tj.ones(2), tj.zeros(2), delta=0.0)
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values "
                       "for beta."):
        F.smooth_l1_loss(tj.ones(2), tj.zeros(2), beta=-1.0)
    with pytest.raises(ValueError, match="Weights and input must have the same size."):
        F.huber_loss(tj.ones(2), tj.zeros(2), weight=tj.ones(3))
    with pytest.raises(ValueError, match="batchmean is not a valid value for reduction"):
        F.huber_loss(tj.ones(2), tj.zeros(2), reduction="batchmean")
    with pytest.warns(UserWarning, match="target size"):
        F.huber_loss(tj.ones(3), tj.zeros(2, 3))


def ref_kl(logp, t, log_target):
    if log_target:
        return np.exp(t) * (t - logp)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t == 0, 0.0, t * np.log(np.where(t == 0, 1.0, t))) - t * logp


@pytest.mark.parametrize("reduction", ["sum", "none", "batchmean", "mean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    logp = np.log(RNG.dirichlet(np.ones(5), 4))
    t = RNG.dirichlet(np.ones(5), 4)
    t[0, 1] = 0.0                                  # contributes 0
    if log_target:
        t = np.log(t + 0.01)
    loss = ref_kl(logp, t, log_target)
    ref = loss.sum() / 4 if reduction == "batchmean" else _reduce(loss, reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # 'mean' warns, as torch
        got = F.kl_div(tj.tensor(logp), tj.tensor(t), reduction=reduction,
                       log_target=log_target)
        assert_close(got.numpy(), ref, rtol=1e-12)
        mod = nn.KLDivLoss(reduction=reduction, log_target=log_target)
        assert_close(mod(tj.tensor(logp), tj.tensor(t)).numpy(), ref, rtol=1e-12)
        check_grads(lambda x: F.kl_div(x, tj.tensor(t), reduction=reduction,
                                       log_target=log_target), [logp])


def test_kl_div_edge_values_and_errors():
    # t = 0 adds 0 for a finite input, nan for -inf or nan (0 * inf), as torch; t < 0 is nan
    x = tj.tensor([-math.inf, -1.0, -1.0, math.nan], requires_grad=True)
    t = tj.tensor([0.0, 0.0, -0.5, 0.0])
    loss = F.kl_div(x, t, reduction="none")
    assert_close(loss.detach().numpy(), [math.nan, 0.0, math.nan, math.nan])
    loss.sum().backward()
    assert x.grad.tolist()[1:3] == [0.0, 0.5]       # d/dx = -t
    assert_close(F.kl_div(tj.tensor([-1.0, -2.0]), tj.tensor([0.5, 0.5]),
                          reduction="batchmean").numpy(),
                 (0.5 * (math.log(0.5) + 1) + 0.5 * (math.log(0.5) + 2)) / 2)
    assert F.kl_div(tj.tensor(-1.0), tj.tensor(0.5), reduction="batchmean").shape == ()
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        nn.KLDivLoss()(tj.zeros(2), tj.ones(2))
    with pytest.raises(ValueError, match="bad is not a valid value for reduction"):
        F.kl_div(tj.zeros(2), tj.ones(2), reduction="bad")
    assert repr(nn.KLDivLoss(reduction="batchmean", log_target=True)) == "KLDivLoss()"


def test_layers_and_losses_against_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = RNG.standard_normal((3, 6, 5))
    w, b = RNG.standard_normal(6), RNG.standard_normal(6)
    t = RNG.standard_normal((3, 6, 5))
    cases = [
        (lambda m, x, w, b, t: m.group_norm(x, 3, w, b, 1e-3)),
        (lambda m, x, w, b, t: m.group_norm(x, 2) * t),
        (lambda m, x, w, b, t: m.huber_loss(x, t, delta=0.7)),
        (lambda m, x, w, b, t: m.smooth_l1_loss(x, t, reduction="sum", beta=0.3)),
        (lambda m, x, w, b, t: m.kl_div(x.log_softmax(1), t.softmax(1), reduction="batchmean")),
        (lambda m, x, w, b, t: m.kl_div(x, t, reduction="sum", log_target=True)),
        (lambda m, x, w, b, t: m.conv1d(x, t[:, :2, :3], b[:3], padding=1, groups=3)),
    ]
    for i, case in enumerate(cases):
        res = []
        for lib, mk, f in ((torch, torch.tensor, tf), (tj, tj.tensor, F)):
            xs = [mk(a, requires_grad=True) for a in (x, w, b, t)]
            out = case(f, *xs)
            out.backward(mk(np.ones(tuple(out.shape))))
            res.append([out.detach().numpy()] + [v.grad.numpy() if v.grad is not None else 0
                                                 for v in xs])
        for a, c in zip(res[0], res[1]):
            np.testing.assert_allclose(c, a, rtol=1e-9, atol=1e-12, err_msg=f"case {i}")
