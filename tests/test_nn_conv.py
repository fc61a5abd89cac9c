"""conv2d / max_pool2d / avg_pool2d (and their modules) against direct loops over the
definitions in float64 numpy, finite-difference gradients, and PyTorch's shape/argument rules."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, check_grads

import tracejit as tj
import tracejit.nn.functional as F
from tracejit import nn

RNG = np.random.default_rng(1)


def ref_conv2d(x, w, b, stride, padding, dilation, groups):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                for ci in range(cg):
                    for a in range(kh):
                        for bb in range(kw):
                            out[:, oc, i, j] += xp[:, g * cg + ci, i * sh + a * dh,
                                                   j * sw + bb * dw] * w[oc, ci, a, bb]
        if b is not None:
            out[:, oc] += b[oc]
    return out


def pool_windows(x, k, s, p, d, ceil_mode, fill):
    """(values of each window as a list, the window's (h, w) positions) per output cell."""
    h, w = x.shape[2:]

    def out_size(size, k, s, p, d):
        span = size + 2 * p - d * (k - 1) - 1
        o = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= size + p:
            o -= 1
        return o
    ho, wo = out_size(h, k[0], s[0], p[0], d[0]), out_size(w, k[1], s[1], p[1], d[1])
    cells = {}
    for i in range(ho):
        for j in range(wo):
            pos = [(i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1])
                   for a in range(k[0]) for b in range(k[1])]
            cells[i, j] = pos
    return ho, wo, cells


def ref_max_pool(x, k, s, p, d, ceil_mode):
    n, c, h, w = x.shape
    ho, wo, cells = pool_windows(x, k, s, p, d, ceil_mode, -np.inf)
    out, idx = np.zeros((n, c, ho, wo)), np.zeros((n, c, ho, wo), np.int64)
    for (i, j), pos in cells.items():
        inside = [(a, b) for a, b in pos if 0 <= a < h and 0 <= b < w]
        vals = np.stack([x[:, :, a, b] for a, b in inside], -1)
        first = vals.argmax(-1)
        out[:, :, i, j] = vals.max(-1)
        flat = np.array([a * w + b for a, b in inside])
        idx[:, :, i, j] = flat[first]
    return out, idx


def ref_avg_pool(x, k, s, p, ceil_mode, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    ho, wo, cells = pool_windows(x, k, s, p, (1, 1), ceil_mode, 0.0)
    out = np.zeros((n, c, ho, wo))
    for (i, j), pos in cells.items():
        inside = [(a, b) for a, b in pos if 0 <= a < h and 0 <= b < w]
        total = sum(x[:, :, a, b] for a, b in inside)
        # PyTorch: windows are clipped to the padded input for the count_include_pad divisor
        hs, ws = i * s[0] - p[0], j * s[1] - p[1]
        he, we = min(hs + k[0], h + p[0]), min(ws + k[1], w + p[1])
        div = divisor_override or ((he - hs) * (we - ws) if count_include_pad else len(inside))
        out[:, :, i, j] = total / div
    return out


CONV_CASES = [
    # stride, padding, dilation, groups, bias
    ((1, 1), (0, 0), (1, 1), 1, True),
    ((2, 2), (1, 1), (1, 1), 1, False),
    ((1, 2), (2, 0), (2, 1), 1, True),
    ((1, 1), (1, 1), (1, 1), 2, True),
    ((2, 1), (0, 1), (1, 2), 4, True),
]


@pytest.mark.parametrize("stride,padding,dilation,groups,bias", CONV_CASES)
def test_conv2d_matches_definition(stride, padding, dilation, groups, bias):
    x = RNG.standard_normal((2, 4, 7, 6))
    w = RNG.standard_normal((4, 4 // groups, 3, 2))
    b = RNG.standard_normal(4) if bias else None
    got = F.conv2d(tj.tensor(x), tj.tensor(w), None if b is None else tj.tensor(b), stride,
                   padding, dilation, groups)
    assert_close(got.numpy(), ref_conv2d(x, w, b, stride, padding, dilation, groups),
                 rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride,padding,dilation,groups", [((1, 1), (1, 1), (1, 1), 1),
                                                            ((2, 1), (0, 1), (1, 2), 2)])
def test_conv2d_gradients(stride, padding, dilation, groups):
    x = RNG.standard_normal((1, 2, 5, 5))
    w = RNG.standard_normal((2, 2 // groups, 2, 3))
    b = RNG.standard_normal(2)
    check_grads(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups),
                [x, w, b])


def test_conv2d_same_valid_unbatched_and_1x1():
    x = RNG.standard_normal((3, 6, 5))
    w = RNG.standard_normal((2, 3, 3, 4))
    same = F.conv2d(tj.tensor(x), tj.tensor(w), padding="same", dilation=(1, 2))
    assert same.shape == (2, 6, 5)
    # 'same' pads total d*(k-1): left gets the floor half, as PyTorch
    xp = np.pad(x, ((0, 0), (1, 1), (3, 3)))
    assert_close(same.numpy(), ref_conv2d(xp[None], w, None, (1, 1), (0, 0), (1, 2), 1)[0])
    assert F.conv2d(tj.tensor(x), tj.tensor(w), padding="valid").shape == (2, 4, 2)
    w1 = RNG.standard_normal((4, 3, 1, 1))
    assert_close(F.conv2d(tj.tensor(x[None]), tj.tensor(w1), stride=2).numpy(),
                 ref_conv2d(x[None], w1, None, (2, 2), (0, 0), (1, 1), 1))
    with pytest.raises(ValueError, match="strided"):
        F.conv2d(tj.tensor(x), tj.tensor(w), stride=2, padding="same")


def test_conv1d():
    x, w = RNG.standard_normal((2, 3, 9)), RNG.standard_normal((4, 3, 3))
    got = F.conv1d(tj.tensor(x), tj.tensor(w), None, 2, 1)
    ref = ref_conv2d(x[:, :, None], w[:, :, None], None, (1, 2), (0, 1), (1, 1), 1)[:, :, 0]
    assert_close(got.numpy(), ref)


def test_conv2d_errors():
    x = tj.randn(1, 3, 4, 4)
    with pytest.raises(RuntimeError, match="expected input.*to have 4 channels"):
        F.conv2d(x, tj.randn(2, 2, 3, 3), groups=2)
    with pytest.raises(RuntimeError, match="Output size is too small"):
        F.conv2d(x, tj.randn(2, 3, 5, 5))
    with pytest.raises(RuntimeError, match="3D .* or 4D"):
        F.conv2d(tj.randn(4, 4), tj.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_conv2d_module_init_and_repr():
    tj.manual_seed(0)
    conv = nn.Conv2d(8, 16, (3, 5), stride=2, padding=1)
    assert [(k, tuple(v.shape)) for k, v in conv.state_dict().items()] == \
        [("weight", (16, 8, 3, 5)), ("bias", (16,))]
    bound = 1 / math.sqrt(8 * 3 * 5)   # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), ..)
    w = conv.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    assert repr(conv) == "Conv2d(8, 16, kernel_size=(3, 5), stride=(2, 2), padding=(1, 1))"
    assert repr(nn.Conv2d(2, 4, 3, groups=2, bias=False, dilation=2)) == \
        "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), dilation=(2, 2), groups=2, bias=False)"
    out = conv(tj.randn(2, 8, 9, 9))
    assert out.shape == (2, 16, 5, 4)


POOL_CASES = [
    # kernel, stride, padding, dilation, ceil_mode
    ((2, 2), (2, 2), (0, 0), (1, 1), False),
    ((3, 3), (2, 2), (1, 1), (1, 1), False),
    ((3, 2), (2, 1), (1, 0), (1, 1), True),
    ((2, 2), (1, 1), (0, 0), (2, 2), False),
    ((3, 3), (3, 3), (1, 1), (1, 1), True),
]


@pytest.mark.parametrize("k,s,p,d,ceil_mode", POOL_CASES)
def test_max_pool2d_matches_definition(k, s, p, d, ceil_mode):
    x = RNG.standard_normal((2, 3, 7, 8))
    out, idx = F.max_pool2d(tj.tensor(x), k, s, p, d, ceil_mode, return_indices=True)
    ref, ref_idx = ref_max_pool(x, k, s, p, d, ceil_mode)
    assert_close(out.numpy(), ref)
    assert idx.dtype is tj.int64 and (idx.numpy() == ref_idx).all()
    check_grads(lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode), [x[:1, :1]])


def test_max_pool_gradient_goes_to_first_maximum():
    x = tj.tensor([[[[1.0, 3.0], [3.0, 3.0]]]], requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    assert x.grad.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]   # PyTorch's choice, not split
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(tj.randn(1, 1, 4, 4), 2, padding=2)


@pytest.mark.parametrize("k,s,p,ceil_mode,include_pad,divisor", [
    ((2, 2), (2, 2), (0, 0), False, True, None),
    ((3, 3), (2, 2), (1, 1), False, True, None),
    ((3, 3), (2, 2), (1, 1), False, False, None),
    ((3, 2), (2, 2), (1, 1), True, True, None),
    ((3, 2), (2, 2), (1, 1), True, False, None),
    ((2, 2), (1, 1), (1, 0), False, True, 3),
])
def test_avg_pool2d_matches_definition(k, s, p, ceil_mode, include_pad, divisor):
    x = RNG.standard_normal((2, 2, 7, 6))
    got = F.avg_pool2d(tj.tensor(x), k, s, p, ceil_mode, include_pad, divisor)
    assert_close(got.numpy(), ref_avg_pool(x, k, s, p, ceil_mode, include_pad, divisor))
    check_grads(lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, include_pad, divisor),
                [x[:1, :1]])


def test_pool_modules():
    x = tj.randn(3, 6, 6)                       # unbatched
    assert nn.MaxPool2d(2)(x).shape == (3, 3, 3)
    assert nn.AvgPool2d(3, stride=1, padding=1)(x).shape == (3, 6, 6)
    _, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert idx.shape == (3, 3, 3)
    assert repr(nn.MaxPool2d(2)) == \
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"


def test_small_cnn_trains():
    tj.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    x = tj.randn(16, 1, 8, 8)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()   # top half brighter?
    opt = tj.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
