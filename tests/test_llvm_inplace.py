"""In-place updates in compiled functions on the LLVM backend: where the kernel that computes
an input's new value is the last reader of that input, it writes straight into the input's
array (no output buffer, no copy back); everywhere else the value is copied back. Either way
the results are eager's, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

import tracejit as tj
from tracejit.jit.backends import default_backend
from inplace_cases import inplace_case

pytestmark = pytest.mark.skipif(default_backend() != "llvm", reason="llvmlite missing")


def _copies(monkeypatch) -> list:
    """Counts the copy-backs of mutated inputs (compiled.py writes them with np.copyto)."""
    import tracejit.jit.compiled as C
    calls: list = []
    real = np.copyto

    def spy(dst, src, *a, **k):
        calls.append(dst.shape)
        return real(dst, src, *a, **k)
    monkeypatch.setattr(C.np, "copyto", spy)
    return calls


def _sgd(ps, gs, bufs, lr, mu):
    with tj.no_grad():
        for p, g, b in zip(ps, gs, bufs):
            b.mul_(mu).add_(g)
            p.add_(b, alpha=-lr)


def _tensors(rng, shapes):
    return [tj.tensor(rng.standard_normal(s).astype(np.float32)) for s in shapes]


def test_optimizer_style_update_is_written_in_place_and_matches_eager(monkeypatch):
    rng = np.random.default_rng(0)
    shapes = [(64, 33), (33,), (7, 64), (7,)]
    ps, gs, bs = (_tensors(rng, shapes) for _ in range(3))
    ps2, bs2 = [p.clone() for p in ps], [b.clone() for b in bs]
    arrays = [t._data for t in ps2 + bs2]
    cf = tj.compile(_sgd)
    copies = _copies(monkeypatch)
    for _ in range(3):
        _sgd(ps, gs, bs, 0.01, 0.9)
        cf(ps2, gs, bs2, 0.01, 0.9)
    assert cf.compiles == 1
    for a, b in zip(ps + bs, ps2 + bs2):
        np.testing.assert_array_equal(b.numpy(), a.numpy())
    assert all(t._data is a for t, a in zip(ps2 + bs2, arrays))
    assert copies == []           # every update went straight into its tensor


def test_non_contiguous_inputs_are_updated_in_place_correctly():
    def f(x, g):
        with tj.no_grad():
            x.mul_(0.5).add_(g)
    base = tj.tensor(np.arange(60, dtype=np.float32).reshape(6, 10))
    ref = base.clone()
    g = tj.ones(10, 6)
    cf = tj.compile(f)
    for _ in range(2):
        f(ref.t(), g)
        cf(base.t(), g)
    np.testing.assert_array_equal(base.numpy(), ref.numpy())


@pytest.mark.parametrize("case", ["flip", "transpose", "row", "sum_after", "read_after",
                                  "shifted_slice"])
def test_updates_that_read_the_old_value_elsewhere_stay_correct(case):
    """The new value must not overwrite elements still to be read: a view of the input read
    at other indices, a reduction of it, a later kernel that reads the old values."""
    def f(x):
        return inplace_case(case, x)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 5)).astype(np.float32)
    x_eager, x_comp = tj.tensor(a), tj.tensor(a)
    cf = tj.compile(f)
    for _ in range(2):
        want = f(x_eager)
        got = cf(x_comp)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(x_comp.numpy(), x_eager.numpy())


def test_the_same_tensor_passed_twice_is_not_overwritten_early():
    def f(a, b):
        with tj.no_grad():
            a.mul_(2)
            return b * 1.0
    x = tj.tensor([1.0, 2.0, 3.0])
    y = tj.tensor([1.0, 2.0, 3.0])
    cf = tj.compile(f)
    want = f(y, y)
    got = cf(x, x)
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_views_of_one_buffer_passed_as_two_inputs_see_the_write_as_in_eager():
    def f(a, b):
        with tj.no_grad():
            a.add_(1.0)
            return b + 0.0
    base = tj.tensor(np.zeros((2, 4), np.float32))
    ref = base.clone()
    cf = tj.compile(f)
    for _ in range(2):
        got = cf(base[0], base[0].view(2, 2))
        want = f(ref[0], ref[0].view(2, 2))
        np.testing.assert_array_equal(base.numpy(), ref.numpy())
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_float_argument_as_alpha_compiles_without_a_graph_break():
    def f(p, g, lr):
        with tj.no_grad():
            p.sub_(g, alpha=lr)
            return p.add(g, alpha=lr)
    p, g = tj.ones(4), tj.full((4,), 2.0)
    cf = tj.compile(f)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a graph break warns
        out = cf(p, g, 0.25)
    np.testing.assert_array_equal(p.numpy(), np.full(4, 0.5, np.float32))
    np.testing.assert_array_equal(out.numpy(), np.ones(4, np.float32))


def test_tensor_alpha_raises_like_pytorch_in_eager():
    with pytest.raises(TypeError, match="alpha"):
        tj.ones(2).add(tj.ones(2), alpha=tj.tensor(2.0))


def test_kernel_writing_over_its_input_is_still_vectorised():
    from kernel_graphs import Builder
    from tracejit.codegen.llvm import engine
    from tracejit.codegen.llvm.backend import compile_graph
    from tracejit.codegen.llvm.kernel import lower
    b = Builder()
    x, y = b.input((1024,)), b.input((1024,))
    g = b.out(b.op("add", b.op("mul", x, y), x))
    cg = compile_graph(g, {0: 0})
    (k,) = cg.schedule.kernels
    text, _ = lower(k, "111", alias=((2, 0),))
    opt = engine.optimized_ir(text)
    assert "x float>" in opt or "x double>" in opt
    xa = np.arange(1024, dtype=np.float32)
    ya = np.full(1024, 2.0, np.float32)
    want = xa * ya + xa
    (out,) = cg([xa, ya])
    assert out is xa                      # written over x, handed back as x itself
    np.testing.assert_array_equal(xa, want)


@pytest.mark.parametrize("n", [8, 1 << 22])      # the large one writes with streaming stores
def test_a_store_over_an_input_never_feeds_a_later_store(n):
    """Every output of a kernel is computed before any is stored: `a.copy_(b)` writes over a,
    and `b.add_(old a)` in the same kernel must still read the old a."""
    def fib(a, b):
        with tj.no_grad():
            t = a.clone()
            a.copy_(b)
            b.add_(t)

    def g(a, b):
        with tj.no_grad():
            old = a * 1.0
            a.copy_(b * 3.0)
            return old * 2.0 + b
    for f in (fib, g):
        cf = tj.compile(f)
        a1, b1 = tj.arange(float(n)), tj.ones(n)
        a2, b2 = a1.clone(), b1.clone()
        want, got = f(a1, b1), cf(a2, b2)
        np.testing.assert_array_equal(a2.numpy(), a1.numpy())
        np.testing.assert_array_equal(b2.numpy(), b1.numpy())
        if want is not None:
            np.testing.assert_array_equal(got.numpy(), want.numpy())
