"""Autograd: backward and its arguments, .grad accumulation, autograd.grad/backward, higher-order
gradients, grad modes, hooks, PyTorch's tie-breaking rules, and the iterative engine."""
from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import check_grads

import tracejit as tj

pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def leaf(values, dtype=tj.float32):
    return tj.tensor(values, dtype=dtype, requires_grad=True)


# --- backward ---

def test_backward_scalar_and_gradient_argument():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0, 6.0] and x.grad.dtype is tj.float32
    y = leaf([1.0, 2.0])
    (y * 3).backward(tj.tensor([1.0, 10.0]))
    assert y.grad.tolist() == [3.0, 30.0]
    z = leaf(2.0)
    (z ** 2).backward(gradient=tj.tensor(0.5))
    assert z.grad.item() == 2.0
    w = leaf([1.0])
    (w * 2).backward()  # one element: the implicit gradient is allowed
    assert w.grad.tolist() == [2.0]


def test_grad_accumulates_on_leaves_only():
    x = leaf([1.0, 2.0])
    h = x * 2
    (h * h).sum().backward(retain_graph=True)
    assert x.grad.tolist() == [8.0, 16.0] and h.grad is None and h.grad_fn is not None
    (h * h).sum().backward()
    assert x.grad.tolist() == [16.0, 32.0]
    x.grad = None
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]
    g = x.grad
    (x * 1).sum().backward()
    assert g.tolist() == [2.0, 2.0] and x.grad is g  # accumulated in place, as PyTorch
    with tj.no_grad():
        x.grad.zero_()
    assert x.grad.tolist() == [0.0, 0.0]


def test_leaf_grads_do_not_alias():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    gout = tj.tensor([1.0, 1.0])
    (a + b).backward(gout)
    with tj.no_grad():
        a.grad.mul_(10)
    assert b.grad.tolist() == [1.0, 1.0] and gout.tolist() == [1.0, 1.0]
    c = leaf([1.0])
    h = c * 1
    h.retain_grad()
    (h + c).sum().backward(retain_graph=True)
    (h + c).sum().backward()
    assert c.grad.tolist() == [4.0] and h.grad.tolist() == [2.0]
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])  # add passes one buffer to a leaf and to h
    h = b * 2
    h.retain_grad()
    z = (a + h) * 3
    z.sum().backward(retain_graph=True)
    first = h.grad
    z.sum().backward()
    assert first.tolist() == [3.0, 3.0] and a.grad.tolist() == [6.0, 6.0]
    kept = []
    x = leaf([1.0, 2.0])
    y = x + 0
    y.register_hook(kept.append)
    (y * 2).sum().backward(retain_graph=True)
    (y * 2).sum().backward()
    assert kept[0].tolist() == [2.0, 2.0] and x.grad.tolist() == [4.0, 4.0]


def test_second_backward_needs_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
    x2 = leaf([1.0, 2.0])
    y2 = (x2.exp() * x2).sum()
    y2.backward(retain_graph=True)
    y2.backward()
    expected = 2 * (np.exp([1.0, 2.0]) * (1 + np.array([1.0, 2.0])))
    np.testing.assert_allclose(x2.grad.numpy(), expected, rtol=1e-6)


def test_backward_errors():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"shape.*\(3,\).*\(2,\)"):
        (x * 2).backward(tj.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        tj.tensor([1.0]).sum().backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        x.detach().sum().backward()


def test_detach_and_no_grad_stop_gradients():
    x = leaf([1.0, 2.0])
    (x * x.detach()).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0]
    with tj.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert not (tj.tensor([1.0]) * 2).requires_grad
    assert not (x > 1).requires_grad and not x.argmax().requires_grad
    assert not x.long().requires_grad and x.double().requires_grad


# --- autograd.grad / autograd.backward ---

def test_autograd_grad():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    ga, gb = tj.autograd.grad((a * b).sum(), [a, b])
    assert ga.tolist() == [3.0, 4.0] and gb.tolist() == [1.0, 2.0]
    assert a.grad is None and b.grad is None  # returned, not accumulated
    (g,) = tj.autograd.grad((a * 2).sum(), a)
    assert g.tolist() == [2.0, 2.0]
    (g,) = tj.autograd.grad(a * 2, a, grad_outputs=tj.tensor([1.0, 3.0]))
    assert g.tolist() == [2.0, 6.0]
    (g,) = tj.autograd.grad([(a * 2).sum(), (a * a).sum()], a)
    assert g.tolist() == [4.0, 6.0]
    h = a * 3
    (gh,) = tj.autograd.grad((h * h).sum(), h)  # with respect to a non-leaf
    assert gh.tolist() == [6.0, 12.0]
    with pytest.raises(RuntimeError, match="scalar outputs"):
        tj.autograd.grad(a * 2, a)
    with pytest.raises(RuntimeError, match="allow_unused"):
        tj.autograd.grad((a * 2).sum(), [a, b])
    ga, gb = tj.autograd.grad((a * 2).sum(), [a, b], allow_unused=True)
    assert ga.tolist() == [2.0, 2.0] and gb is None
    ga, gb = tj.autograd.grad((a * 2).sum(), [a, b], materialize_grads=True)
    assert gb.tolist() == [0.0, 0.0]
    with pytest.raises(RuntimeError, match="does not require grad"):
        tj.autograd.grad((a * 2).sum(), tj.tensor([1.0]))


def test_autograd_grad_frees_graph_unless_retained():
    a = leaf([1.0, 2.0])
    y = (a.exp()).sum()
    tj.autograd.grad(y, a, retain_graph=True)
    tj.autograd.grad(y, a)
    with pytest.raises(RuntimeError, match="second time"):
        tj.autograd.grad(y, a)


def test_autograd_backward():
    a = leaf([1.0, 2.0])
    tj.autograd.backward((a * a).sum())
    assert a.grad.tolist() == [2.0, 4.0]
    b = leaf([1.0, 2.0])
    tj.autograd.backward([b * 2, b * 3], [tj.ones(2), tj.tensor([1.0, 0.0])])
    assert b.grad.tolist() == [5.0, 2.0]
    c, d = leaf([1.0]), leaf([2.0])
    (c * d).sum().backward(inputs=[c])
    assert c.grad.tolist() == [2.0] and d.grad is None


# --- higher order ---

def test_second_order():
    x = leaf([1.0, 2.0], tj.float64)
    (g,) = tj.autograd.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad and g.tolist() == [3.0, 12.0]
    (h,) = tj.autograd.grad(g.sum(), x)
    assert h.tolist() == [6.0, 12.0]
    y = leaf([0.5, 1.5], tj.float64)
    (y.sin() ** 2).sum().backward(create_graph=True)
    assert y.grad.requires_grad
    gy = y.grad.clone()
    y.grad = None
    gy.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * np.cos(2 * np.array([0.5, 1.5])))


def test_third_order_and_mixed_partials():
    x = leaf(2.0, tj.float64)
    y = x ** 4
    (g1,) = tj.autograd.grad(y, x, create_graph=True)
    (g2,) = tj.autograd.grad(g1, x, create_graph=True)
    (g3,) = tj.autograd.grad(g2, x)
    assert (g1.item(), g2.item(), g3.item()) == (32.0, 48.0, 48.0)
    a, b = leaf(1.5, tj.float64), leaf(0.5, tj.float64)
    (ga,) = tj.autograd.grad((a * b.exp() * a).sum(), a, create_graph=True)
    (gab,) = tj.autograd.grad(ga, b)  # d2/dadb = 2 a e^b
    assert abs(gab.item() - 2 * 1.5 * np.exp(0.5)) < 1e-12


def test_hessian_vector_product_against_finite_differences():
    rng = np.random.default_rng(0)
    w0, xv = rng.standard_normal((3, 2)), rng.standard_normal((4, 3))

    def grad_w(w):
        w = w if w.requires_grad else w.requires_grad_()
        loss = ((tj.tensor(xv) @ w).tanh() ** 2).sum() + w.sigmoid().sum()
        return tj.autograd.grad(loss, w, create_graph=True)[0]
    check_grads(grad_w, [w0], rtol=1e-4, atol=1e-6)


# --- grad modes ---

def test_grad_mode_context_managers():
    x = leaf([1.0])
    assert tj.is_grad_enabled()
    with tj.no_grad():
        assert not tj.is_grad_enabled() and not (x * 2).requires_grad
        with tj.enable_grad():
            assert (x * 2).requires_grad
        assert not tj.is_grad_enabled()
    assert tj.is_grad_enabled()
    with tj.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert tj.is_grad_enabled()
    tj.set_grad_enabled(False)  # as a function call it takes effect at once
    assert not tj.is_grad_enabled()
    tj.set_grad_enabled(True)
    with pytest.raises(ValueError), tj.no_grad():
        raise ValueError("boom")
    assert tj.is_grad_enabled()


def test_grad_mode_decorators():
    x = leaf([1.0])

    @tj.no_grad()
    def f(t):
        return t * 2

    @tj.enable_grad()
    def g(t):
        return t * 2

    @tj.set_grad_enabled(False)
    def h(t):
        return t * 2

    assert not f(x).requires_grad and not h(x).requires_grad

    @tj.no_grad  # without parentheses, as torch 2.x allows
    def bare(t):
        return t * 2
    assert not bare(x).requires_grad and bare.__name__ == "bare"
    with tj.no_grad():
        assert g(x).requires_grad
    assert tj.is_grad_enabled()
    assert f.__name__ == "f"


# --- hooks and retain_grad ---

def test_register_hook():
    x = leaf([1.0, 2.0])
    y = x * 2
    seen = []
    y.register_hook(lambda g: seen.append(g.tolist()))
    handle = y.register_hook(lambda g: g * 10)
    y.sum().backward(retain_graph=True)
    assert seen == [[1.0, 1.0]] and x.grad.tolist() == [20.0, 20.0]
    handle.remove()
    x.grad = None
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]
    z = leaf([1.0])
    z.register_hook(lambda g: g * 3)  # on a leaf: changes what is accumulated
    (z * 2).sum().backward()
    assert z.grad.tolist() == [6.0]
    with pytest.raises(RuntimeError, match="doesn't require"):
        tj.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad():
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    assert y.retains_grad
    (y * y).sum().backward()
    assert y.grad.tolist() == [6.0, 12.0] and x.grad.tolist() == [18.0, 36.0]


# --- PyTorch's rules at ties and special points ---

def test_gradient_ties_follow_pytorch():
    t = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    x = leaf(t)
    x.max().backward()  # full reduction: ties share evenly
    assert x.grad.tolist() == [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]
    x = leaf(t)
    x.max(1).values.sum().backward()  # max(dim): the returned index gets all of it
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    assert x.max(1).indices.tolist() == [1, 0]
    x = leaf(t)
    x.amax(1).sum().backward()  # amax: evenly
    assert x.grad.tolist() == [[0.0, 0.5, 0.5], [0.5, 0.5, 0.0]]
    x = leaf(t)
    x.min(1)[0].sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    x = leaf([1.0, 2.0])
    tj.maximum(x, tj.tensor([1.0, 1.0])).sum().backward()  # maximum tie: half each
    assert x.grad.tolist() == [0.5, 1.0]


def test_special_points_follow_pytorch():
    x = leaf([0.0, 2.0, -1.0])
    (x ** 0).sum().backward()  # d/dx x^0 is 0, not 0 * inf
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    a, b = leaf([0.0, 0.0, 2.0]), leaf([2.0, 0.0, 1.0])
    (a ** b).sum().backward()
    assert a.grad.tolist() == [0.0, 0.0, 1.0]
    assert b.grad.tolist()[:2] == [0.0, 0.0]  # 0^b: exponent gradient 0 for b >= 0
    x = leaf([0.0, 1.0, -1.0])
    x.abs().sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, -1.0]
    x = leaf([0.0, 1.0])
    x.relu().sum().backward()
    assert x.grad.tolist() == [0.0, 1.0]
    x = leaf([0.0, 1.0])
    x.sqrt().sum().backward()
    assert x.grad.tolist()[0] == np.inf
    x = leaf([0.5, 2.5, 1.0])
    lo, hi = leaf([1.0, 1.0, 1.0]), leaf([2.0, 2.0, 1.0])
    x.clamp(lo, hi).sum().backward()  # x == lo == hi: the input passes through
    assert (x.grad.tolist(), lo.grad.tolist(), hi.grad.tolist()) == \
        ([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    x, lo, hi = leaf([0.0, 5.0]), leaf([3.0, 3.0]), leaf([1.0, 1.0])
    x.clamp(lo, hi).sum().backward()  # lo > hi: the result is hi everywhere
    assert (x.grad.tolist(), lo.grad.tolist(), hi.grad.tolist()) == \
        ([0.0, 0.0], [0.0, 0.0], [1.0, 1.0])
    x = leaf([1.0, 2.0, 0.0])
    x.prod().backward()  # one zero: only its own gradient survives
    assert x.grad.tolist() == [0.0, 0.0, 2.0]


def test_dtype_of_gradients():
    x = leaf([1.0, 2.0])
    (x.double() * 2).sum().backward()
    assert x.grad.dtype is tj.float32 and x.grad.tolist() == [2.0, 2.0]
    y = leaf([1.0], tj.float64)
    (y.float() * tj.tensor([3.0])).sum().backward()
    assert y.grad.dtype is tj.float64


# --- the engine ---

def test_one_node_backward_to_leaves_behaves_as_the_engine():
    # loss.backward() on one node whose inputs are leaves skips the engine's bookkeeping
    # (autograd._one_node_to_leaves): hooks once per leaf, .grad accumulates, the graph is
    # freed, a leaf used twice gets the sum
    x = tj.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = tj.tensor([0.5, -1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    y = tj.compile(lambda x, w: (x * w).sum())(x, w)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * w.detach().numpy())
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.detach().numpy())
    assert len(seen) == 2
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()
    z = tj.tensor([3.0], requires_grad=True)
    (z * z).sum().backward()            # two edges to one leaf: the engine sums them
    np.testing.assert_allclose(z.grad.numpy(), [6.0])


def test_one_node_backward_keeps_the_engines_order(monkeypatch):
    # hooks that update their leaf in place (an optimizer step in a grad hook) must not change
    # another leaf's lazily computed gradient, and run last leaf first, as in the engine
    import tracejit.autograd as ag

    def run():
        x, w = leaf([1.0, 2.0, 3.0]), leaf([4.0, 5.0, 6.0])
        order = []
        for name, p in (("x", x), ("w", w)):
            def hook(g, p=p, name=name):
                order.append(name)
                with tj.no_grad():
                    p.sub_(0.1 * g)
            p.register_hook(hook)
        y = x * w
        y.backward(tj.ones(3))
        with pytest.raises(RuntimeError, match="second time"):
            y.backward(tj.ones(3))
        return x.grad.numpy(), w.grad.numpy(), order
    fast = run()
    monkeypatch.setattr(ag, "_one_node_to_leaves", lambda *a: False)
    engine = run()
    np.testing.assert_array_equal(fast[0], engine[0])
    np.testing.assert_array_equal(fast[1], engine[1])
    assert fast[2] == engine[2]


def test_diamond_and_reuse():
    x = leaf([2.0], tj.float64)
    a = x * x
    b = a.exp()
    c = a.sin()
    (b * c + a).sum().backward()
    v = 4.0
    expected = (np.exp(v) * np.sin(v) + np.exp(v) * np.cos(v) + 1) * 2 * 2.0
    assert abs(x.grad.item() - expected) < 1e-9


def test_long_chain_is_iterative():
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # the engine must not recurse (nor must backward's helpers)
    try:
        x = leaf([1.0, 2.0])
        y = x
        for _ in range(100_000):
            y = y * 1.0
        y = y + x
        y.sum().backward()
        assert x.grad.tolist() == [2.0, 2.0]
    finally:
        sys.setrecursionlimit(old)


def test_long_chain_autograd_grad():
    x = leaf(1.0, tj.float64)
    y = x
    for _ in range(20_000):
        y = y + x * 1e-4
    (g,) = tj.autograd.grad(y, x)
    assert abs(g.item() - 3.0) < 1e-9


def test_saved_tensors_are_released():
    x = leaf([1.0, 2.0])
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node.out is None and all(s is None for s in node.saved)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")
def test_against_torch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    a0, b0, w0 = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((3, 2))
    results = []
    for lib in (tj, torch):
        a = lib.tensor(a0, requires_grad=True)
        b = lib.tensor(b0, requires_grad=True)
        w = lib.tensor(w0, requires_grad=True)
        h = ((a * b + 1.0).tanh() @ w).relu()
        loss = (h.logsumexp(1) + h.var(1, correction=0) - h.amax(0).sum() / 3).mean()
        loss = loss + (a[[0, 2, 2]] ** 2).sum() * 0.1 + a.clamp(-0.5, 0.5).sigmoid().sum()
        loss.backward(create_graph=True)
        (gg,) = lib.autograd.grad((a.grad ** 2).sum(), b)
        results.append([loss.detach().numpy(), a.grad.detach().numpy(), b.grad.detach().numpy(),
                        w.grad.detach().numpy(), gg.detach().numpy()])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
