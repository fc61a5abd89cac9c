"""Every op of the table, compiled, against eager: forward and backward, called twice with
different data (a baked constant or a stale buffer would show on the second call).

Elementwise ops are generated from the table (domain, arity, params); ops with their own shape
rules reuse the per-op cases of test_ops.py. Runs on every available CPU backend.
"""
import numpy as np
import pytest
from test_ops import ELEMENTWISE, OTHER_CASES, PARAMS

import tracejit as tj
from tracejit.jit.backends import default_backend
from tracejit.ops import REGISTRY as R
from tracejit.tensor import apply

BACKENDS = ["interpret"] + (["llvm"] if default_backend() == "llvm" else [])


def _elementwise_inputs(op, seed, dtype):
    rng = np.random.default_rng(seed)
    lo, hi = op.domain
    shapes = [(3, 4), (4,), (3, 1)][: max(op.nin, 1)]
    out = []
    for i in range(op.nin):
        if i < getattr(op, "cond_inputs", 0):
            out.append(tj.tensor(rng.random(shapes[i]) > 0.5))
        else:
            a = rng.uniform(lo, hi, shapes[i]).astype(dtype)
            out.append(tj.tensor(a, requires_grad=np.dtype(dtype).kind == "f" and
                                 op.vjp is not None))
    return out


def _run(fn, ts):
    for t in ts:
        t.grad = None
    out = fn(*ts)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    diff = [o for o in outs if o.requires_grad]
    if diff:
        sum((o.float().sum() for o in diff), diff[0].float().sum() * 0).backward()
    grads = [None if (not t.requires_grad or t.grad is None) else t.grad.numpy().copy()
             for t in ts]
    return [o.detach().numpy().copy() for o in outs], grads


def _check(fn, make_inputs, backend, rtol=1e-5, atol=1e-6):
    cf = tj.compile(fn, backend=backend)
    for seed in (0, 1):
        ts = make_inputs(seed)
        want, gwant = _run(fn, ts)
        got, ggot = _run(cf, ts)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
        for a, b in zip(ggot, gwant):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    assert cf.compiles == 1


EW = [(n, p) for n in ELEMENTWISE for p in (PARAMS.get(n) or [{}])]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,params", EW, ids=[f"{n}{p or ''}" for n, p in EW])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_elementwise_compiled(backend, name, params, dtype):
    op = R[name]
    if op.dtype_rule == "logical":
        dtype = np.float32  # logical ops take any dtype and cast to bool

    def fn(*xs):
        return apply(op, *xs, **params)
    _check(fn, lambda seed: _elementwise_inputs(op, seed, dtype), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,case", [pytest.param(n, c, id=f"{n}-{c.label}")
                                       for n, c in OTHER_CASES])
def test_other_compiled(backend, name, case):
    def make(seed):
        rng = np.random.default_rng(seed)
        arrays = case.inputs(rng)
        return [tj.tensor(a.astype(np.float64), requires_grad=case.grad and a.size > 0)
                if a.dtype.kind == "f" else tj.tensor(a) for a in arrays]
    _check(case.fn, make, backend, rtol=1e-9, atol=1e-10)
