"""tj.nn.functional: activations, linear, normalisation, dropout, embedding, one_hot and the losses,
each against its mathematical definition in float64 numpy (forward) and central finite
differences (backward), plus PyTorch's argument checks and numerical stability at extreme inputs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close, check_grads

import tracejit as tj
import tracejit.nn.functional as F
from tracejit import nn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 5))
_erf = np.vectorize(math.erf)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def log_softmax(x, axis):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "gelu": (F.gelu, lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) *
                                                   (x + 0.044715 * x ** 3)))),
    "silu": (F.silu, lambda x: x * sigmoid(x)),
    "tanh": (F.tanh, np.tanh),
    "sigmoid": (F.sigmoid, sigmoid),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "softplus": (lambda x: F.softplus(x, 2.0), lambda x: np.log1p(np.exp(2 * x)) / 2),
    "softmax": (lambda x: F.softmax(x, 1), lambda x: np.exp(log_softmax(x, 1))),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda x: log_softmax(x, 0)),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_forward_and_grad(name):
    fn, ref = ACTIVATIONS[name]
    x = X + 0.01  # keep the kinks of relu/leaky_relu away from finite-difference steps
    assert_close(fn(tj.tensor(x)).numpy(), ref(x), rtol=1e-12, atol=1e-12, msg=name)
    check_grads(fn, [x])


def test_activation_modules_match_functional():
    x = tj.tensor(X)
    for mod, f in [(nn.ReLU(), F.relu), (nn.GELU(), F.gelu), (nn.SiLU(), F.silu),
                   (nn.Tanh(), F.tanh), (nn.Sigmoid(), F.sigmoid)]:
        assert_close(mod(x).numpy(), f(x).numpy(), msg=type(mod).__name__)
    assert_close(nn.GELU("tanh")(x).numpy(), F.gelu(x, approximate="tanh").numpy())
    assert_close(nn.Softmax(dim=0)(x).numpy(), F.softmax(x, 0).numpy())
    assert_close(nn.LogSoftmax(dim=1)(x).numpy(), F.log_softmax(x, 1).numpy())
    with pytest.raises(RuntimeError, match="approximate"):
        nn.GELU("fast")


def test_softmax_family_is_stable_for_huge_logits():
    x = tj.tensor([[1000.0, 0.0, -1000.0], [-1e30, 0.0, 1e30]], requires_grad=True)
    assert_close(F.softmax(x, 1).detach().numpy(), [[1, 0, 0], [0, 0, 1]])
    ls = F.log_softmax(x, 1)
    assert np.isfinite(ls.detach().numpy()[:, :2]).all()
    loss = F.cross_entropy(x, tj.tensor([0, 2]))
    loss.backward()
    assert loss.item() == 0.0 and np.isfinite(x.grad.numpy()).all()


def test_inplace_relu_modifies_input():
    x = tj.tensor([-1.0, 2.0])
    out = nn.ReLU(inplace=True)(x)
    assert out is x and x.tolist() == [0.0, 2.0]


def test_linear_and_batched_input():
    x, w, b = RNG.standard_normal((2, 3, 4)), RNG.standard_normal((5, 4)), RNG.standard_normal(5)
    assert_close(F.linear(tj.tensor(x), tj.tensor(w), tj.tensor(b)).numpy(), x @ w.T + b)
    check_grads(F.linear, [x, w, b])
    check_grads(lambda x, w: F.linear(x, w), [x[0], w])


def test_layer_norm_matches_definition_and_grads():
    x = RNG.standard_normal((2, 3, 4))
    w, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    mu = x.mean((1, 2), keepdims=True)
    var = ((x - mu) ** 2).mean((1, 2), keepdims=True)
    ref = (x - mu) / np.sqrt(var + 1e-5) * w + b
    assert_close(F.layer_norm(tj.tensor(x), (3, 4), tj.tensor(w), tj.tensor(b)).numpy(), ref)
    check_grads(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), [x, w, b])
    check_grads(lambda x: F.layer_norm(x, 4), [x])
    # a large common offset does not lose precision (two-pass variance)
    big = x + 1e6
    assert_close(F.layer_norm(tj.tensor(big), 4).numpy(),
                 F.layer_norm(tj.tensor(x), 4).numpy(), atol=1e-6)
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(tj.tensor(x), (5,))


def test_batch_norm_functional_train_and_eval():
    x = RNG.standard_normal((4, 3, 2, 2))
    w, b = RNG.standard_normal(3), RNG.standard_normal(3)
    rm, rv = tj.zeros(3, dtype=tj.float64), tj.ones(3, dtype=tj.float64)
    out = F.batch_norm(tj.tensor(x), rm, rv, tj.tensor(w), tj.tensor(b), training=True,
                       momentum=0.3)
    mu, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    ref = (x - mu[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * w[:, None, None] + \
        b[:, None, None]
    assert_close(out.numpy(), ref)
    assert_close(rm.numpy(), 0.3 * mu)
    assert_close(rv.numpy(), 0.7 + 0.3 * x.var((0, 2, 3), ddof=1))     # unbiased, as PyTorch
    ev = F.batch_norm(tj.tensor(x), rm, rv, training=False)
    assert_close(ev.numpy(), (x - rm.numpy()[:, None, None]) /
                 np.sqrt(rv.numpy()[:, None, None] + 1e-5))
    check_grads(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(tj.ones(1, 3), None, None, training=True)


def test_dropout():
    tj.manual_seed(0)
    x = tj.ones(2000)
    y = F.dropout(x, 0.25)
    kept = y.numpy() != 0
    assert 0.70 < kept.mean() < 0.80
    assert_close(y.numpy()[kept], np.full(kept.sum(), 1 / 0.75))
    assert F.dropout(x, 0.25, training=False) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.dropout(x, 1.5)
    d = nn.Dropout(0.5)
    d.eval()
    assert d(x) is x
    xg = tj.ones(50, requires_grad=True)
    out = F.dropout(xg, 0.5)
    out.sum().backward()
    assert_close(xg.grad.numpy(), out.detach().numpy())  # grad = mask / (1 - p)


def test_embedding_and_padding_idx_gradient():
    w = RNG.standard_normal((6, 3))
    idx = tj.tensor([[1, 0, 5], [0, 0, 2]])
    assert_close(F.embedding(idx, tj.tensor(w)).numpy(), w[idx.numpy()])
    check_grads(lambda w: F.embedding(idx, w), [w])
    wt = tj.tensor(w, requires_grad=True)
    F.embedding(idx, wt, padding_idx=0).sum().backward()
    g = wt.grad.numpy()
    assert (g[0] == 0).all() and g[1].tolist() == [1, 1, 1] and g[5].tolist() == [1, 1, 1]
    with pytest.raises(RuntimeError, match="indices"):
        F.embedding(tj.tensor([0.0]), wt)


def test_one_hot():
    out = F.one_hot(tj.tensor([0, 2, 1]), 4)
    assert out.dtype is tj.int64
    assert out.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]]
    assert F.one_hot(tj.tensor([[1], [3]])).shape == (2, 1, 4)
    with pytest.raises(RuntimeError, match="smaller than num_classes"):
        F.one_hot(tj.tensor([3]), 3)
    with pytest.raises(RuntimeError, match="non-negative"):
        F.one_hot(tj.tensor([-1]), 3)
    with pytest.raises(RuntimeError, match="index tensor"):
        F.one_hot(tj.tensor([1.0]), 3)


def test_pad_is_reexported():
    assert F.pad(tj.ones(2, 2), (1, 0)).shape == (2, 3)


# --- losses, against loops over the definitions ---

LOGITS = RNG.standard_normal((6, 4)) * 2
TARGET = np.array([0, 3, 1, -100, 2, 3])
CW = np.array([0.5, 1.0, 2.0, 1.5])


def ref_cross_entropy(x, t, weight=None, ignore=-100, reduction="mean", ls=0.0):
    """PyTorch's documented formula, element by element."""
    n, c = x.shape
    w = np.ones(c) if weight is None else weight
    logp = log_softmax(x, 1)
    losses, denom = [], 0.0
    for i in range(n):
        if t.ndim == 1 and t[i] == ignore:
            losses.append(0.0)
            continue
        if t.ndim == 2:          # probabilities
            q = t[i] * (1 - ls) + ls / c
            losses.append(-(w * q * logp[i]).sum())
            denom += 1
            continue
        nll = -w[t[i]] * logp[i, t[i]]
        smooth = -(w * logp[i]).sum() / c
        losses.append((1 - ls) * nll + ls * smooth)
        denom += w[t[i]]
    losses = np.array(losses)
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / denom


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weight", [None, CW])
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_cross_entropy_class_indices(reduction, weight, ls):
    wt = None if weight is None else tj.tensor(weight)

    def fn(x):
        return F.cross_entropy(x, tj.tensor(TARGET), wt, reduction=reduction,
                               label_smoothing=ls)
    assert_close(fn(tj.tensor(LOGITS)).numpy(),
                 ref_cross_entropy(LOGITS, TARGET, weight, -100, reduction, ls), rtol=1e-12)
    check_grads(fn, [LOGITS])
    mod = nn.CrossEntropyLoss(wt, reduction=reduction, label_smoothing=ls)
    assert_close(mod(tj.tensor(LOGITS), tj.tensor(TARGET)).numpy(), fn(tj.tensor(LOGITS)).numpy())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probabilities(reduction):
    probs = RNG.random((6, 4))
    probs /= probs.sum(1, keepdims=True)

    def fn(x, p):
        return F.cross_entropy(x, p, tj.tensor(CW), reduction=reduction, label_smoothing=0.1)
    assert_close(fn(tj.tensor(LOGITS), tj.tensor(probs)).numpy(),
                 ref_cross_entropy(LOGITS, probs, CW, reduction=reduction, ls=0.1))
    check_grads(fn, [LOGITS, probs])


def test_cross_entropy_spatial_and_unbatched():
    x = RNG.standard_normal((2, 3, 4))          # (N, C, d)
    t = np.array([[0, 1, 2, 1], [2, -100, 0, 0]])
    flat_x = x.transpose(0, 2, 1).reshape(-1, 3)
    ref = ref_cross_entropy(flat_x, t.reshape(-1), ls=0.1)
    assert_close(F.cross_entropy(tj.tensor(x), tj.tensor(t), label_smoothing=0.1).numpy(), ref)
    check_grads(lambda x: F.cross_entropy(x, tj.tensor(t)), [x])
    v = RNG.standard_normal(4)
    assert_close(F.cross_entropy(tj.tensor(v), tj.tensor(2)).numpy(), -log_softmax(v, 0)[2])


def test_nll_loss_and_errors():
    lp = log_softmax(LOGITS, 1)
    for red in ("mean", "sum", "none"):
        got = F.nll_loss(tj.tensor(lp), tj.tensor(TARGET), tj.tensor(CW), reduction=red)
        ref = ref_cross_entropy(LOGITS, TARGET, CW, reduction=red)
        assert_close(got.numpy(), ref)
    check_grads(lambda x: F.nll_loss(x, tj.tensor(TARGET), ignore_index=-100), [lp])
    assert_close(nn.NLLLoss()(tj.tensor(lp), tj.tensor(TARGET)).numpy(),
                 ref_cross_entropy(LOGITS, TARGET))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        F.nll_loss(tj.tensor(lp), tj.tensor(TARGET), reduction="avg")
    with pytest.raises(ValueError, match="batch_size"):
        F.cross_entropy(tj.tensor(LOGITS), tj.tensor([0, 1]))
    with pytest.raises(IndexError):
        F.cross_entropy(tj.tensor(LOGITS), tj.tensor([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


def test_regression_losses():
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    for red, agg in (("mean", np.mean), ("sum", np.sum), ("none", lambda v: v)):
        assert_close(F.mse_loss(tj.tensor(a), tj.tensor(b), reduction=red).numpy(),
                     agg((a - b) ** 2))
        assert_close(F.l1_loss(tj.tensor(a), tj.tensor(b), reduction=red).numpy(),
                     agg(np.abs(a - b)))
    check_grads(F.mse_loss, [a, b])
    check_grads(F.l1_loss, [a, b])
    assert_close(nn.MSELoss(reduction="sum")(tj.tensor(a), tj.tensor(b)).numpy(),
                 ((a - b) ** 2).sum())
    assert_close(nn.L1Loss()(tj.tensor(a), tj.tensor(b)).numpy(), np.abs(a - b).mean())
    with pytest.warns(UserWarning, match="target size"):
        F.mse_loss(tj.tensor(a), tj.tensor(b[0]))


def test_binary_cross_entropy():
    p, t, w = sigmoid(X), RNG.random(X.shape), RNG.random(X.shape)
    ref = -(t * np.log(p) + (1 - t) * np.log(1 - p)) * w
    for red, agg in (("mean", np.mean), ("sum", np.sum), ("none", lambda v: v)):
        got = F.binary_cross_entropy(tj.tensor(p), tj.tensor(t), tj.tensor(w), reduction=red)
        assert_close(got.numpy(), agg(ref))
    check_grads(lambda p, t: F.binary_cross_entropy(p, t), [p, t])
    # log is clamped at -100, as PyTorch: a confident wrong answer costs 100, not inf
    p0 = tj.tensor([0.0, 1.0], requires_grad=True)
    loss = F.binary_cross_entropy(p0, tj.tensor([1.0, 0.0]))
    assert loss.item() == 100.0
    loss.backward()
    assert np.isfinite(p0.grad.numpy()).all()
    assert_close(nn.BCELoss()(tj.tensor(p), tj.tensor(t)).numpy(),
                 (-(t * np.log(p) + (1 - t) * np.log(1 - p))).mean())
    with pytest.raises(ValueError, match="same size"):
        F.binary_cross_entropy(tj.tensor(p), tj.tensor(t[0]))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # sigmoid(-1000) in numpy
def test_binary_cross_entropy_with_logits_is_stable():
    t, pw = RNG.random(X.shape), RNG.random(5) + 0.5
    ref = -(pw * t * np.log(sigmoid(X)) + (1 - t) * np.log(1 - sigmoid(X)))
    got = F.binary_cross_entropy_with_logits(tj.tensor(X), tj.tensor(t), reduction="none",
                                             pos_weight=tj.tensor(pw))
    assert_close(got.numpy(), ref)
    check_grads(lambda x, t: F.binary_cross_entropy_with_logits(x, t), [X, t])
    check_grads(lambda x: F.binary_cross_entropy_with_logits(x, tj.tensor(t),
                                                             pos_weight=tj.tensor(pw)), [X])
    big = tj.tensor([1000.0, -1000.0], requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(big, tj.tensor([0.0, 1.0]), reduction="none")
    assert loss.tolist() == [1000.0, 1000.0]
    loss.sum().backward()
    assert big.grad.tolist() == [1.0, -1.0]
    mod = nn.BCEWithLogitsLoss(pos_weight=tj.tensor(pw))
    assert "pos_weight" in mod.state_dict()
    assert_close(mod(tj.tensor(X), tj.tensor(t)).numpy(), ref.mean())


def test_weighted_loss_modules_keep_weight_as_buffer():
    loss = nn.CrossEntropyLoss(weight=tj.tensor(CW))
    assert list(loss.state_dict()) == ["weight"]
    assert list(nn.MSELoss().state_dict()) == []


def test_binary_cross_entropy_refuses_values_outside_0_1():
    t = tj.tensor([1.0, 0.0])
    for bad in ([0.5, 1.5], [-1e-7, 0.5], [math.nan, 0.5]):
        with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
            F.binary_cross_entropy(tj.tensor(bad), t)
    for bad in ([1.5, 0.0], [math.nan, 0.0]):
        with pytest.raises(RuntimeError, match="all elements of target should be between 0 "
                           "and 1"):
            F.binary_cross_entropy(tj.tensor([0.5, 0.5]), tj.tensor(bad))
    with pytest.raises(RuntimeError, match="of input should be"):       # input checked first
        nn.BCELoss()(tj.tensor([2.0]), tj.tensor([2.0]))
    # the bounds themselves are fine (each log clamped at -100)
    assert F.binary_cross_entropy(tj.tensor([0.0, 1.0]), tj.tensor([0.0, 1.0])).item() == 0.0


def test_binary_cross_entropy_compiles_without_the_value_check():
    # a traced input has no values to check: no graph break, the same loss as eager
    f = tj.compile(lambda x, t: F.binary_cross_entropy(x.sigmoid(), t))
    x, t = tj.tensor(X[0]), tj.tensor(RNG.random(5))
    for _ in range(2):
        assert_close(f(x, t).numpy(), F.binary_cross_entropy(x.sigmoid(), t).numpy())


@pytest.mark.parametrize("dtype,name", [(tj.int32, "Int"), (tj.int16, "Short"),
                                        (tj.int8, "Char"), (tj.bool, "Bool"),
                                        (tj.float64, "Double")])
def test_class_index_targets_must_be_long_or_byte(dtype, name):
    target = tj.tensor(TARGET).to(dtype)
    msg = f"expected target dtype to be Long or Byte, but got {name}"
    with pytest.raises(RuntimeError, match=msg):
        F.nll_loss(tj.tensor(LOGITS), target)
    with pytest.raises(RuntimeError, match=msg):
        F.cross_entropy(tj.tensor(LOGITS), target, label_smoothing=0.1)
    with pytest.raises(RuntimeError, match=msg):
        nn.CrossEntropyLoss()(tj.tensor(LOGITS), target)


def test_uint8_targets_are_class_indices():
    target = np.array([0, 3, 1, 1, 2, 3])       # (no -100: a uint8 cannot hold it)
    ref = ref_cross_entropy(LOGITS, target, CW, ls=0.2)
    got = F.cross_entropy(tj.tensor(LOGITS), tj.tensor(target).to(tj.uint8), tj.tensor(CW),
                          label_smoothing=0.2)
    assert_close(got.numpy(), ref)
    # a floating target of another shape is a (wrong) index target, not probabilities
    with pytest.raises(RuntimeError, match="but got Float"):
        F.cross_entropy(tj.randn(3, 4), tj.zeros(3))
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected"):
        F.cross_entropy(tj.randn(3, 4), tj.zeros(3, 5))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target "
                       r"batch_size \(2\)"):                  # before the dtype, as torch
        F.nll_loss(tj.randn(3, 4), tj.zeros(2, dtype=tj.int32))
