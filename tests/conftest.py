"""Shared helpers of the eager-core tests: finite-difference gradient checks in float64.

`check_grads(fn, arrays)` builds float64 leaf tensors from `arrays`, runs `fn` on them, and
compares `tracejit.autograd.grad` of `sum(fn(...) * v)` (v random) with central differences of
the same scalar, computed by rerunning `fn` on perturbed copies. The tests import these
functions directly (`from conftest import check_grads`).
"""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj


def _scalar(fn, arrays, v, wrap):
    # (grad mode stays on: fn may itself differentiate, e.g. for double-backward checks)
    out = fn(*[wrap(a) for a in arrays])
    return float(np.sum(np.asarray(out.detach().numpy(), dtype=np.float64) * v))


def numeric_grads(fn, arrays, v, wrt, eps=1e-6, wrap=None):
    """Central differences of sum(fn(*arrays) * v) with respect to arrays[i], i in wrt."""
    wrap = wrap or (lambda a: tj.tensor(a))
    grads = []
    for i in wrt:
        base = [np.array(a, dtype=a.dtype, copy=True) for a in arrays]
        g = np.zeros(base[i].shape, np.float64)
        for j in np.ndindex(base[i].shape):
            old = base[i][j]
            base[i][j] = old + eps
            hi = _scalar(fn, base, v, wrap)
            base[i][j] = old - eps
            lo = _scalar(fn, base, v, wrap)
            base[i][j] = old
            g[j] = (hi - lo) / (2 * eps)
        grads.append(g)
    return grads


def check_grads(fn, arrays, *, wrt=None, rtol=1e-4, atol=1e-5, seed=0, leaf=None):
    """Compare autograd's gradients of fn with central finite differences (float64).

    `arrays` are numpy arrays; floating ones (or the indices in `wrt`) are differentiated.
    `leaf(a)` makes the input tensor (default: tj.tensor(a, requires_grad=True)); it may
    return a non-contiguous view, which is then differentiated as a non-leaf.
    """
    arrays = [np.asarray(a) for a in arrays]
    if wrt is None:
        wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    leaf = leaf or (lambda a: tj.tensor(a, requires_grad=True))
    xs = [leaf(a) if i in wrt else tj.tensor(a) for i, a in enumerate(arrays)]
    out = fn(*xs)
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.5, 1.5, out.shape)
    if not out.requires_grad:
        analytic = [np.zeros(arrays[i].shape) for i in wrt]
    else:
        gs = tj.autograd.grad((out * tj.tensor(v, dtype=out.dtype)).sum(), [xs[i] for i in wrt],
                              allow_unused=True)
        analytic = [np.zeros(arrays[i].shape) if g is None else g.numpy() for i, g in
                    zip(wrt, gs)]
    numeric = numeric_grads(fn, arrays, v, wrt)
    for i, a, n in zip(wrt, analytic, numeric):
        assert a.shape == n.shape, f"input {i}: grad shape {a.shape}, expected {n.shape}"
        np.testing.assert_allclose(a, n, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i} (shape {arrays[i].shape})")
    return analytic


def assert_close(actual, expected, *, rtol=1e-5, atol=1e-6, msg=""):
    """Values equal up to float tolerance, with NaN and +-inf in the same places."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{msg}: shape {a.shape}, expected {e.shape}"
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg=f"{msg}: NaN positions")
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(e), err_msg=f"{msg}: +inf")
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(e), err_msg=f"{msg}: -inf")
    fin = np.isfinite(e)
    np.testing.assert_allclose(a[fin], e[fin], rtol=rtol, atol=atol, err_msg=msg)


@pytest.fixture(autouse=True)
def _grad_mode_restored():
    """A test that fails inside no_grad() must not leak grad mode into the next test."""
    prev = tj.is_grad_enabled()
    yield
    tj.set_grad_enabled(prev)
