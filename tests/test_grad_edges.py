"""Gradients and errors at the edges of ops' domains, as torch defines them: a masked-out
gradient stays 0 even when the incoming one is inf, std and norms have gradient 0 where they
are 0, hardtanh's gradient stops at its bounds, a loss whose targets are all ignored has zero
gradients, and negative class indices are errors. Eager and compiled agree."""
import math

import numpy as np
import pytest

import tracejit as tj

F = tj.nn.functional
NAN, INF = math.nan, math.inf


def grad_of(f, *values, compiled=False):
    xs = [tj.tensor(v, requires_grad=True) for v in values]
    fn = tj.compile(lambda *a: f(*a).sum()) if compiled else (lambda *a: f(*a).sum())
    for _ in range(2 if compiled else 1):      # the second call runs the compiled code
        for x in xs:
            x.grad = None
        fn(*xs).backward()
    return [x.grad.tolist() for x in xs]


def same(a, b):
    np.testing.assert_array_equal(np.array(a, dtype=float), np.array(b, dtype=float))


@pytest.mark.parametrize("compiled", [False, True])
def test_masked_gradients_select_instead_of_multiplying(compiled):
    """inf * 0 would be nan: torch selects the gradient where it flows, 0 elsewhere."""
    same(grad_of(lambda x: x.relu().sqrt(), [1.0, 0.0, -3.0], compiled=compiled),
         [[0.5, 0.0, 0.0]])
    same(grad_of(lambda x: x.clamp(min=0.0).sqrt(), [1.0, 0.0, -3.0], compiled=compiled),
         [[0.5, INF, 0.0]])
    same(grad_of(lambda x: x.clamp(max=0.0).neg().sqrt(), [1.0, -4.0], compiled=compiled),
         [[0.0, -0.25]])
    same(grad_of(lambda a, b: tj.maximum(a, b).sqrt(), [0.0, -1.0], [-1.0, 0.0],
                 compiled=compiled), [[INF, 0.0], [0.0, INF]])


def test_maximum_minimum_split_ties_and_pass_nan_to_both():
    """torch: where(a == b, g / 2, g).masked_fill(a < b, 0); a NaN has no order, so both
    operands get the whole gradient."""
    a, b = [1.0, 2.0, NAN, 3.0], [2.0, 2.0, 1.0, NAN]
    same(grad_of(lambda a, b: tj.maximum(a, b) * 2.0, a, b),
         [[0.0, 1.0, 2.0, 2.0], [2.0, 1.0, 2.0, 2.0]])
    same(grad_of(lambda a, b: tj.minimum(a, b) * 2.0, a, b),
         [[2.0, 1.0, 2.0, 2.0], [0.0, 1.0, 2.0, 2.0]])


@pytest.mark.parametrize("compiled", [False, True])
def test_std_and_normalize_have_zero_gradient_where_zero(compiled):
    g = grad_of(lambda x: x.std(1), [[1.0, 2.0, 4.0], [5.0, 5.0, 5.0]], compiled=compiled)[0]
    assert np.all(np.isfinite(g[0])) and abs(sum(g[0])) < 1e-6
    same(g[1], [0.0, 0.0, 0.0])
    same(grad_of(lambda x: x.std(), [[3.0, 3.0]], compiled=compiled), [[[0.0, 0.0]]])
    assert np.isnan(tj.tensor([1.0, NAN]).std().item())      # NaN still propagates
    # a zero row: x / max(norm, eps) has gradient 1/eps (the clamp stops the norm's part)
    g = grad_of(lambda x: F.normalize(x, dim=1), [[0.0, 0.0], [3.0, 4.0]], compiled=compiled)[0]
    np.testing.assert_allclose(g[0], [1e12, 1e12], rtol=1e-6)
    np.testing.assert_allclose(g[1], [0.2 - 7 * 3 / 125, 0.2 - 7 * 4 / 125], rtol=1e-6)


def test_hardtanh_gradient_stops_at_its_bounds():
    x = [0.0, 6.0, -1.0, 1.0, 7.0, NAN, 0.5]
    same(grad_of(F.relu6, x), [[0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0]])
    same(grad_of(F.hardtanh, x), [[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]])
    y = F.relu6(tj.tensor(x))
    same(y.tolist(), [0.0, 6.0, 0.0, 1.0, 6.0, NAN, 0.5])
    a = tj.tensor([0.5, 2.0, 7.0], requires_grad=True)
    b = a * 1.0
    F.relu6(b, inplace=True)
    b.sum().backward()
    same(a.grad.tolist(), [1.0, 1.0, 0.0])


@pytest.mark.parametrize("compiled", [False, True])
def test_cross_entropy_all_ignored_has_zero_gradient(compiled):
    x = tj.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    f = tj.compile(F.cross_entropy) if compiled else F.cross_entropy
    for _ in range(2):
        x.grad = None
        loss = f(x, tj.tensor([-100, -100]))
        loss.backward()
    assert math.isnan(loss.item())                 # 0 / 0, as torch
    same(x.grad.tolist(), [[0.0, 0.0], [0.0, 0.0]])


def test_negative_class_indices_are_errors():
    x = tj.tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))
    for f in (F.cross_entropy, F.nll_loss):
        with pytest.raises(IndexError, match="Target -1 is out of bounds"):
            f(x, tj.tensor([0, 1, -1]))
        with pytest.raises(IndexError, match="Target 4 is out of bounds"):
            f(x, tj.tensor([0, 4, 1]))
        f(x, tj.tensor([0, -100, 1]))              # ignore_index is not a class
    with pytest.raises(RuntimeError, match="index -1 is out of bounds for dimension 1"):
        x.gather(1, tj.tensor([[0], [-1], [2]]))
    with pytest.raises(RuntimeError, match="Size does not match at dimension 0"):
        x.gather(1, tj.tensor([[0], [1], [2], [3]]))
    g = tj.compile(lambda x, i: x.gather(1, i) * 2.0)
    i = tj.tensor([[0], [3], [2]])
    np.testing.assert_allclose(g(x, i).numpy(), x.gather(1, i).numpy() * 2.0)
    with pytest.raises(IndexError):                # traced: the index check reports it
        g(x, tj.tensor([[0], [-1], [2]]))
    with pytest.raises(IndexError):
        tj.compile(F.cross_entropy)(x, tj.tensor([0, 1, -2]))


def test_binary_cross_entropy_gradient_at_saturated_probabilities():
    """torch: (x - t) / max(x (1 - x), 1e-12), where the log clamped at -100 has none."""
    x = [0.0, 1.0, 0.3, 0.0]
    t = [1.0, 0.0, 0.7, 0.0]
    g = grad_of(lambda x: F.binary_cross_entropy(x, tj.tensor(t), reduction="none"), x)[0]
    np.testing.assert_allclose(g, [-1e12, 1e12, -0.4 / 0.21, 0.0], rtol=1e-5)
    loss = F.binary_cross_entropy(tj.tensor(x), tj.tensor(t), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, -(0.7 * np.log(0.3) + 0.3 *
                                                            np.log(0.7)), 0.0], rtol=1e-6)
