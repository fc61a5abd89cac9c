"""In-place ops (`add_ sub_ mul_ div_ zero_ fill_ copy_ clamp_`, `+=`, `x[k] = v`) and their
autograd rules: the version counter (shared with views), the error at backward when a saved
tensor was modified, the error when modifying a leaf that requires grad, and correct gradients
when a non-leaf is modified in place (checked against finite differences)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import check_grads

import tracejit as tj

RNG = np.random.default_rng(1)


def base():
    return tj.arange(6.0).reshape(2, 3)


@pytest.mark.parametrize("call,ref", [
    (lambda x: x.add_(1), lambda a: a + 1),
    (lambda x: x.add_(tj.ones(3), alpha=2), lambda a: a + 2),
    (lambda x: x.sub_(tj.tensor([[1.0], [2.0]])), lambda a: a - [[1.0], [2.0]]),
    (lambda x: x.mul_(2).div_(4), lambda a: a / 2),
    (lambda x: x.div_(tj.tensor(2.0)), lambda a: a / 2),
    (lambda x: x.zero_(), lambda a: a * 0),
    (lambda x: x.fill_(3), lambda a: np.full_like(a, 3)),
    (lambda x: x.fill_(tj.tensor(2.5)), lambda a: np.full_like(a, 2.5)),
    (lambda x: x.copy_(tj.tensor([1.0, 2.0, 3.0], dtype=tj.float64)),
     lambda a: np.broadcast_to([1.0, 2.0, 3.0], a.shape)),
    (lambda x: x.clamp_(1, 4), lambda a: np.clip(a, 1, 4)),
    (lambda x: x.clamp_(min=2), lambda a: np.maximum(a, 2)),
    (lambda x: x.clamp_(max=2), lambda a: np.minimum(a, 2)),
])
def test_inplace_values_and_identity(call, ref):
    x = base()
    expected = ref(x.numpy().copy())
    data = x.numpy()
    v = x._version[0]
    out = call(x)
    assert out is x and x.numpy() is data  # same tensor, same buffer
    np.testing.assert_allclose(x.numpy(), expected)
    assert x._version[0] > v


def test_augmented_assignment_keeps_identity():
    x = base()
    y = x
    x += 1
    x *= 2
    x -= 1
    x /= 2
    assert y is x and x.tolist() == [[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]]


def test_inplace_dtype_and_shape_rules():
    i = tj.arange(4)
    i.mul_(2)
    assert i.tolist() == [0, 2, 4, 6] and i.dtype is tj.int64
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.add_(1.5)
    with pytest.raises(RuntimeError, match="can't be cast"):
        i.div_(2)
    f = tj.arange(4.0)
    f.add_(tj.tensor([1, 1, 1, 1]))  # an int operand is fine
    assert f.dtype is tj.float32 and f.tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(RuntimeError, match="shape"):
        f.add_(tj.ones(2, 4))  # the result may not broadcast self to a bigger shape
    with pytest.raises(RuntimeError):
        base().copy_(tj.ones(4))
    e = tj.ones(3, 1).expand(3, 4)
    with pytest.raises(RuntimeError, match="expanded|single memory location"):
        e.add_(1)


def test_views_share_storage_and_version():
    x = base()
    row = x[1]
    row.add_(100)
    assert x[1].tolist() == [103.0, 104.0, 105.0]
    col = x[:, 0]
    col.zero_()
    assert x[:, 0].tolist() == [0.0, 0.0]
    flat = x.view(6)
    flat[5] = -1.0
    assert x[1, 2].item() == -1.0
    t = x.T
    t[0, 1] = 7.0
    assert x[1, 0].item() == 7.0
    v = x._version[0]
    x[0].fill_(1.0)
    assert x._version[0] == v + 1 and row._version is x._version
    x[1, 1].fill_(-5.0)           # an int for every dim: a 0-d view, not a copy
    assert x[1, 1].item() == -5.0
    v = tj.tensor([1.0, 2.0])
    v[1].mul_(3.0)
    assert v.tolist() == [1.0, 6.0]


def test_modified_saved_tensor_raises_at_backward():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # exp saves its output
    y.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()

    x = tj.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    z = h * h  # mul saves its inputs
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation.*version"):
        z.sum().backward()

    x = tj.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    z = h.sin()
    h[0] = 5.0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()

    w = tj.tensor([1.0, 2.0])  # a saved tensor that does not require grad is checked too
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    z = x * w
    w.mul_(3)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        z.sum().backward()


def test_unsaved_tensors_may_be_modified():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    z = h.exp()  # exp saves its output, not h
    h.add_(1)
    z.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, 2.0]), rtol=1e-6)
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    z = h + h  # add saves nothing
    h.mul_(5)
    z.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_leaf_requiring_grad_cannot_be_modified():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    for f in (lambda: x.add_(1), lambda: x.zero_(), lambda: x.mul_(2),
              lambda: x.copy_(tj.ones(2)), lambda: x.clamp_(0, 1), lambda: x.fill_(1)):
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            f()
    with pytest.raises(RuntimeError, match="leaf"):
        x[0] = 3.0
    with pytest.raises(RuntimeError, match="leaf"):
        x += 1
    assert x.tolist() == [1.0, 2.0]
    with tj.no_grad():  # what optimizers do
        x.sub_(0.5 * tj.ones(2))
        x[1] = 7.0
    assert x.tolist() == [0.5, 7.0] and x.requires_grad and x.is_leaf


def test_inplace_on_non_leaf_gradients():
    def chain(x, w):
        y = x * 2.0
        y.mul_(w)
        y.add_(x.sin())
        y.clamp_(-1.5, 1.5)
        y.sub_(w, alpha=0.5)
        y.div_(1.5)
        return y
    check_grads(chain, [RNG.standard_normal((2, 3)), RNG.standard_normal(3)])

    def overwrite(x, v):
        y = x * 3.0
        y.zero_()  # the history before zero_ gets a zero gradient
        y.add_(v * x)
        return y
    check_grads(overwrite, [RNG.standard_normal(3), RNG.standard_normal(3)])

    def copy_from(x, v):
        y = x * 3.0
        y.copy_(v.sin())
        return y * x
    check_grads(copy_from, [RNG.standard_normal(3), RNG.standard_normal(3)])

    def into_plain(x):
        buf = tj.zeros(2, 3, dtype=tj.float64)
        buf += x
        buf.mul_(x)
        return buf
    check_grads(into_plain, [RNG.standard_normal((2, 3))])


def test_zero_and_fill_keep_graph_like_pytorch():
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.zero_()
    assert y.requires_grad and y.tolist() == [0.0, 0.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    x = tj.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.fill_(3.0)
    (y * x).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_inplace_on_view_in_autograd_is_refused():
    """PyTorch rebases a view's history; tracejit raises instead of computing it wrongly."""
    x = tj.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * 2
    v = y[0]
    with pytest.raises(RuntimeError, match="view"):
        v.mul_(2)
    y2 = x * 2
    row = y2[1]
    y2.mul_(3)  # the base changes under the view
    with pytest.raises(RuntimeError, match="view"):
        (row * 1).sum()
    with tj.no_grad():  # without autograd, views are plain memory
        y3 = x * 1
        y3[0].zero_()
    assert y3[0].tolist() == [0.0, 0.0]
    y4 = x * 2
    v4 = y4[0]
    with tj.no_grad():  # a write that autograd does not record leaves the view's history valid
        y4.add_(1)
    (v4 * 1).sum().backward()
    assert x.grad.tolist() == [[2.0, 2.0], [0.0, 0.0]] and v4.tolist() == [3.0, 5.0]


def test_inplace_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    x0, w0 = RNG.standard_normal((2, 3)), RNG.standard_normal(3)
    grads = []
    for lib in (tj, torch):
        x = lib.tensor(x0, requires_grad=True)
        w = lib.tensor(w0, requires_grad=True)
        y = x * 2.0
        y.mul_(w)
        y[0, 1:] = w[:2] ** 2
        y.clamp_(-1.0, 1.0)
        z = y.sin()
        z.add_(1)
        (z * y).sum().backward()
        grads.append((x.grad.numpy(), w.grad.numpy()))
    for ours, theirs in zip(*grads):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
