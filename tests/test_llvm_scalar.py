"""Tests for the LLVM scalar vocabulary (tracejit/codegen/llvm/scalar.py) against numpy.

Every primitive is JIT-compiled inside an element-wise loop (tests/llvm_harness.py) and
compared with numpy: transcendental accuracy in ulp (dense sweeps, 2^20 random bit
patterns, special values; float32 both on the native f32 kernels and on the f64 path),
special values bit for bit, subnormal results, Python-style division, casts, comparisons,
explicit vector operands, and that the optimised loop is vectorised (float32: without any
f64 arithmetic).
"""
from __future__ import annotations

import itertools
import math
import os
import re
import zlib

import numpy as np
import pytest
from llvm_harness import NP_DTYPES, Kernel, compile_op

from tracejit.codegen.llvm.scalar import PRIMITIVES, ULP_BOUNDS, LLVMScalar

FLOATS = ("float32", "float64")
INTS = ("int32", "int64")
UNARY = ("exp", "expm1", "log", "log1p", "tanh", "erf", "sin", "cos")
RANGES = {"exp": (-750, 720), "expm1": (-60, 720), "log": (0, 1e3), "log1p": (-1, 10),
          "tanh": (-25, 25), "erf": (-7, 7), "sin": (-1e5, 1e5), "cos": (-1e5, 1e5)}
_erf = np.frompyfunc(math.erf, 1, 1)


@pytest.fixture(autouse=True)
def _quiet():
    with np.errstate(all="ignore"):
        yield


def reference(op: str, *xs: np.ndarray) -> np.ndarray:
    """numpy float64 on the float64 version of the inputs, rounded to the input dtype."""
    wide = [x.astype(np.float64) for x in xs]
    fn = {"erf": lambda x: _erf(x).astype(np.float64), "pow": np.power}.get(op)
    return (fn or getattr(np, op))(*wide).astype(xs[0].dtype)


def ordinal(a: np.ndarray) -> np.ndarray:
    """Monotone integer key of a float array (as uint64); +0 and -0 share a key."""
    it = np.int32 if a.dtype == np.float32 else np.int64
    i = a.view(it).astype(np.int64)
    mag = i & np.int64(np.iinfo(it).max)
    return (np.where(i < 0, -mag, mag)).view(np.uint64) + np.uint64(1 << 63)


def ulp_error(got: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """(max ulp distance over finite references, index of it); values must be finite too."""
    ok = np.isfinite(ref)
    assert np.isfinite(got[ok]).all(), "non-finite result where numpy's is finite"
    a, b = ordinal(got[ok]), ordinal(ref[ok])
    d = np.where(a >= b, a - b, b - a).astype(np.float64)
    i = int(np.argmax(d))
    return float(d[i]), int(np.flatnonzero(ok)[i])


def same_bits(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Elementwise bit-identical, any NaN matching any NaN (signed zeros distinguished)."""
    it = np.int32 if got.dtype == np.float32 else np.int64
    return (got.view(it) == ref.view(it)) | (np.isnan(got) & np.isnan(ref))


def specials(dt: str) -> np.ndarray:
    fi = np.finfo(dt)
    tiny, sub = fi.smallest_normal, fi.smallest_subnormal
    vals = [0.0, -0.0, sub, -sub, tiny - sub, -(tiny - sub), tiny, -tiny, fi.max, -fi.max,
            np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, 1e-30, -1e-30, 88.72, 89.0,
            -87.3, -103.9, -104.0, 709.78, 709.79, -708.4, -745.1, -745.2, 22.0, 6.0, 3.0,
            np.pi / 2, np.pi, 1e22, -1.0 + 2.0 ** -24, 1.0 - 2.0 ** -24]
    return np.array(vals, dtype=dt)


def accuracy_inputs(op: str, dt: str) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{op}/{dt}".encode()))
    lo, hi = RANGES[op]
    parts = [np.linspace(lo, hi, 200_001), rng.uniform(-3, 3, 100_000), specials(dt)]
    if dt == "float32":
        parts.append(rng.integers(0, 2**32, 2**20, dtype=np.uint64).astype(np.uint32)
                     .view(np.float32))
    else:
        parts.append(rng.integers(0, 2**64, 2**20, dtype=np.uint64).view(np.float64))
    return np.concatenate([p.astype(dt) for p in parts])


@pytest.mark.parametrize("dt", FLOATS)
@pytest.mark.parametrize("op", UNARY)
def test_transcendental_accuracy(op: str, dt: str) -> None:
    x = accuracy_inputs(op, dt)
    got = compile_op(op, (dt,))(x)
    ref = reference(op, x)
    assert (np.isnan(got) == np.isnan(ref)).all(), x[np.isnan(got) != np.isnan(ref)][:5]
    inf = np.isinf(ref)
    assert (got[inf] == ref[inf]).all(), x[inf][got[inf] != ref[inf]][:5]
    err, i = ulp_error(got, ref)
    bound = ULP_BOUNDS[op][FLOATS.index(dt)]
    assert err <= bound, f"{op} {dt}: max {err:.0f} ulp at x={x[i]!r}: {got[i]!r} vs {ref[i]!r}"


@pytest.mark.parametrize("op", UNARY)
def test_float32_via_f64_path_accuracy(op: str) -> None:
    """The older float32 path (extend, f64 kernel, round once) stays within 1 ulp."""
    x = accuracy_inputs(op, "float32")
    got = compile_op(op, ("float32",), native_f32=False)(x)
    ref = reference(op, x)
    assert (np.isnan(got) == np.isnan(ref)).all()
    assert ulp_error(got, ref)[0] <= 1


def test_float32_subnormal_results_and_inputs() -> None:
    """Gradual underflow of exp/expm1-style results, and subnormal inputs everywhere."""
    rng = np.random.default_rng(11)
    x = np.concatenate([np.linspace(-104.0, -87.0, 400_001),
                        rng.uniform(-104.0, -87.0, 100_000)]).astype(np.float32)
    got, ref = compile_op("exp", ("float32",))(x), reference("exp", x)
    assert (got[ref == 0] == 0).all() and (got[ref != 0] > 0).all()
    assert ulp_error(got, ref)[0] <= ULP_BOUNDS["exp"][0]
    sub = np.concatenate([2.0 ** -np.arange(127, 150), rng.uniform(0, 2.0 ** -126, 50_000)])
    sub = np.concatenate([sub, -sub]).astype(np.float32)
    assert (sub != 0).all() and (np.abs(sub) < np.finfo(np.float32).tiny).all()
    for op in UNARY:
        got, ref = compile_op(op, ("float32",))(sub), reference(op, sub)
        assert (np.isnan(got) == np.isnan(ref)).all(), op
        assert ulp_error(got, ref)[0] <= ULP_BOUNDS[op][0], op


def test_float32_hardest_reduction() -> None:
    """sin/cos around 7.729179e28 (0x6f79be45), the float32 closest to a multiple of pi/2
    (2^-29.2 away), and around a few other large arguments."""
    bits = np.array([0x6F79BE45, 0x5F800000, 0x7F7FFFFF, 0x4B7FFFFF, 0x4CC90FDB],
                    dtype=np.int64)
    x = (bits[:, None] + np.arange(-50, 51)).ravel().astype(np.uint32).view(np.float32)
    x = np.concatenate([x, -x])
    for op in ("sin", "cos"):
        got, ref = compile_op(op, ("float32",))(x), reference(op, x)
        assert ulp_error(got, ref)[0] <= ULP_BOUNDS[op][0], op


@pytest.mark.skipif(not os.environ.get("TRACEJIT_EXHAUSTIVE"),
                    reason="every float32 input: minutes per function; TRACEJIT_EXHAUSTIVE=1")
@pytest.mark.parametrize("op", UNARY)
def test_float32_exhaustive(op: str) -> None:
    """All 2^32 float32 bit patterns, in chunks: the f32 bound, NaN and inf as numpy."""
    try:
        from scipy.special import erf as fast_erf
    except ImportError:
        fast_erf = None
    kernel, step = compile_op(op, ("float32",)), 1 << 24
    for start in range(0, 1 << 32, step):
        x = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32).view(np.float32)
        got = kernel(x)
        if op == "erf" and fast_erf is not None:
            ref = fast_erf(x.astype(np.float64)).astype(np.float32)
        else:
            ref = reference(op, x)
        assert (np.isnan(got) == np.isnan(ref)).all(), x[np.isnan(got) != np.isnan(ref)][:5]
        inf = np.isinf(ref)
        assert (got[inf] == ref[inf]).all(), x[inf][got[inf] != ref[inf]][:5]
        err, i = ulp_error(got, ref)
        assert err <= ULP_BOUNDS[op][0], f"{op}: {err:.0f} ulp at x={x[i]!r}: {got[i]!r}"


@pytest.mark.parametrize("dt", FLOATS)
@pytest.mark.parametrize("op", UNARY)
def test_transcendental_special_values(op: str, dt: str) -> None:
    x = specials(dt)
    got = compile_op(op, (dt,))(x)
    ref = reference(op, x)
    exact = ~np.isfinite(ref) | (ref == 0) | (np.abs(ref) == 1) | ~np.isfinite(x) | (x == 0)
    bad = exact & ~same_bits(got, ref)
    assert not bad.any(), list(zip(x[bad], got[bad], ref[bad]))


@pytest.mark.parametrize("dt", FLOATS)
def test_pow_accuracy(dt: str) -> None:
    rng = np.random.default_rng(7)
    n = 1 << 18
    big = 700.0 if dt == "float64" else 88.0
    cases = [(np.exp(rng.uniform(-50, 50, n)), rng.uniform(-15, 15, n)),
             (rng.uniform(0, 2, n), rng.uniform(-big, big, n)),
             (rng.uniform(0.999, 1.001, n), rng.uniform(-5e5, 5e5, n)),
             (-rng.uniform(0, 20, n), rng.integers(-200, 200, n).astype(float))]
    it = np.uint32 if dt == "float32" else np.uint64
    bits = [rng.integers(0, np.iinfo(it).max, n, dtype=np.uint64).astype(it).view(dt)
            for _ in range(2)]
    x = np.concatenate([c[0].astype(dt) for c in cases] + [bits[0]])
    y = np.concatenate([c[1].astype(dt) for c in cases] + [bits[1]])
    got = compile_op("pow", (dt, dt))(x, y)
    ref = reference("pow", x, y)
    assert (np.isnan(got) == np.isnan(ref)).all()
    assert (got[np.isinf(ref)] == ref[np.isinf(ref)]).all()
    err, i = ulp_error(got, ref)
    bound = ULP_BOUNDS["pow"][FLOATS.index(dt)]
    assert err <= bound, f"pow {dt}: {err:.0f} ulp at {x[i]!r}**{y[i]!r}: {got[i]!r} vs {ref[i]!r}"


@pytest.mark.parametrize("dt", FLOATS)
def test_pow_special_values(dt: str) -> None:
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, np.inf, -np.inf,
            np.nan, 1e-310, -1e-310, 1e300, -1e300, 2.0 ** 24 + 1, 2.0 ** 53, 2.0 ** 53 + 2,
            -(2.0 ** 53), 7.0, -7.0, 1e-5, 0.1]
    x, y = (np.array(v, dtype=dt) for v in zip(*itertools.product(vals, vals)))
    got = compile_op("pow", (dt, dt))(x, y)
    ref = reference("pow", x, y)
    assert (np.isnan(got) == np.isnan(ref)).all()
    exact = ~np.isfinite(ref) | (ref == 0) | (np.abs(ref) == 1)
    bad = exact & ~same_bits(got, ref)
    assert not bad.any(), list(zip(x[bad], y[bad], got[bad], ref[bad]))[:10]
    assert ulp_error(got, ref)[0] <= ULP_BOUNDS["pow"][FLOATS.index(dt)]
    # exactly representable results come out exact
    a = np.array([2.0, 3.0, -2.0, 10.0, 0.5, -3.0, 4.0], dtype=dt)
    b = np.array([10.0, 5.0, 3.0, 15.0, -4.0, -3.0, 0.5], dtype=dt)
    np.testing.assert_array_equal(compile_op("pow", (dt, dt))(a, b), reference("pow", a, b))


def test_signed_zero_results() -> None:
    for dt in FLOATS:
        z = np.array([-0.0], dtype=dt)
        for op in ("expm1", "tanh", "log1p", "sin", "erf"):
            assert np.signbit(compile_op(op, (dt,))(z)[0]), (op, dt)
        assert compile_op("exp", (dt,))(np.array([89.0 if dt == "float32" else 710.0],
                                                 dtype=dt))[0] == np.inf


@pytest.mark.parametrize("dt", FLOATS)
def test_float_floordiv_remainder(dt: str) -> None:
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 3.0, -3.0, 7.5, -7.5, 1e30, -1e30, np.inf, -np.inf,
            np.nan, 1e-40, 0.1, -0.1, 5.0, -5.0]
    a, b = (np.array(v, dtype=dt) for v in zip(*itertools.product(vals, vals)))
    rng = np.random.default_rng(3)
    a = np.concatenate([a, rng.normal(0, 100, 20000).astype(dt)])
    b = np.concatenate([b, rng.normal(0, 10, 20000).astype(dt)])
    for op, ref in (("floordiv", np.floor_divide), ("remainder", np.remainder)):
        got, want = compile_op(op, (dt, dt))(a, b), ref(a, b)
        bad = ~same_bits(got, want)
        assert not bad.any(), (op, list(zip(a[bad], b[bad], got[bad], want[bad]))[:5])


@pytest.mark.parametrize("dt", INTS)
def test_int_floordiv_remainder_never_trap(dt: str) -> None:
    ii = np.iinfo(dt)
    vals = [0, 1, -1, 2, -2, 7, -7, 3, -3, ii.min, ii.max, ii.min + 1]
    a, b = (np.array(v, dtype=dt) for v in zip(*itertools.product(vals, vals)))
    rng = np.random.default_rng(4)
    a = np.concatenate([a, rng.integers(ii.min, ii.max, 20000, dtype=dt)])
    b = np.concatenate([b, rng.integers(-50, 50, 20000, dtype=dt)])
    for op, ref in (("floordiv", np.floor_divide), ("remainder", np.remainder)):
        got = compile_op(op, (dt, dt))(a, b)
        np.testing.assert_array_equal(got, ref(a, b))   # x // 0 == x % 0 == 0, like numpy
        assert (got[b == 0] == 0).all()


@pytest.mark.parametrize("dt", FLOATS + INTS)
def test_arithmetic_and_minmax(dt: str) -> None:
    rng = np.random.default_rng(5)
    if dt in INTS:
        ii = np.iinfo(dt)
        a = rng.integers(ii.min, ii.max, 5000, dtype=dt)
        b = np.concatenate([rng.integers(ii.min, ii.max, 4990, dtype=dt),
                            np.array([ii.min, ii.max, 0, -1, 1, 5, 2, 3, 1, 0], dtype=dt)])
    else:
        a = np.concatenate([rng.normal(0, 10, 5000), [np.nan, 1.0, np.nan, np.inf]]).astype(dt)
        b = np.concatenate([rng.normal(0, 10, 5000), [1.0, np.nan, np.nan, -np.inf]]).astype(dt)
    for op, ref in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply),
                    ("maximum", np.maximum), ("minimum", np.minimum)):
        np.testing.assert_array_equal(compile_op(op, (dt, dt))(a, b), ref(a, b), err_msg=op)
    for op, ref in (("neg", np.negative), ("abs", np.abs)):
        np.testing.assert_array_equal(compile_op(op, (dt,))(a), ref(a), err_msg=op)
    if dt in FLOATS:
        np.testing.assert_array_equal(compile_op("div", (dt, dt))(a, b), a / b)
        assert not np.signbit(compile_op("abs", (dt,))(np.array([-0.0], dtype=dt)))[0]


@pytest.mark.parametrize("dt", FLOATS)
def test_rounding_and_sqrt(dt: str) -> None:
    x = np.concatenate([np.arange(-10, 10.5, 0.5), [0.5 + 2.0 ** -20, -0.0, 2.0 ** 52 + 1,
                                                    np.inf, -np.inf, np.nan, 1e-40, -2.5]])
    x = np.concatenate([x, np.random.default_rng(6).normal(0, 1e3, 5000)]).astype(dt)
    for op, ref in (("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
                    ("rint", np.rint), ("sqrt", np.sqrt)):
        got = compile_op(op, (dt,))(x)
        assert same_bits(got, ref(x)).all(), op
    assert list(compile_op("rint", (dt,))(np.array([0.5, 1.5, 2.5, -0.5, -2.5], dtype=dt))) \
        == [0.0, 2.0, 2.0, -0.0, -2.0]


@pytest.mark.parametrize("dt", FLOATS + INTS + ("bool",))
def test_comparisons(dt: str) -> None:
    vals = {"bool": [False, True]}.get(dt, [0, 1, -1, 2.5, np.nan, np.inf, -0.0]
                                       if dt in FLOATS else [0, 1, -1, 7, -(2 ** 31)])
    a, b = (np.array(v, dtype=NP_DTYPES[dt]) for v in zip(*itertools.product(vals, vals)))
    for op, ref in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                    ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)):
        np.testing.assert_array_equal(compile_op(op, (dt, dt), "bool")(a, b), ref(a, b), op)


def test_logical_and_select() -> None:
    a, b = (np.array(v) for v in zip(*itertools.product([False, True], repeat=2)))
    for op, ref in (("logical_and", np.logical_and), ("logical_or", np.logical_or),
                    ("logical_xor", np.logical_xor)):
        np.testing.assert_array_equal(compile_op(op, ("bool", "bool"))(a, b), ref(a, b))
    np.testing.assert_array_equal(compile_op("logical_not", ("bool",))(a), ~a)
    k = Kernel(lambda m, c, x: m.select(c, x, m.mul(x, 2.0)), ("bool", "float32"), "float32")
    x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)
    c = np.array([True, False, True, False])
    np.testing.assert_array_equal(k(c, x), np.where(c, x, 2 * x))


CAST_VALUES = [0.0, -0.0, 1.5, -1.5, 2.7, -2.7, 1e3, 2.0 ** 31 - 128, -(2.0 ** 31), 2.0 ** 31,
               -(2.0 ** 31) - 1e3, 2.0 ** 63, -(2.0 ** 63), 1e30, -1e30, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("src", FLOATS)
@pytest.mark.parametrize("dst", INTS)
def test_cast_float_to_int(src: str, dst: str) -> None:
    x = np.array(CAST_VALUES, dtype=src)
    got = compile_op("cast", (src,), dst, extra=(dst,))(x)
    info = np.iinfo(dst)
    inside = np.isfinite(x) & (x >= info.min) & (x < 2.0 ** (info.bits - 1))
    np.testing.assert_array_equal(got[inside], x[inside].astype(dst))
    assert (got[~inside] == info.min).all()          # documented: NaN/out of range -> min


def test_casts_between_kinds() -> None:
    x = np.array([0.0, -0.0, 1.0, np.nan, -2.5, 1e-45, 3.4e38, 1e300], dtype=np.float64)
    np.testing.assert_array_equal(compile_op("cast", ("float64",), "bool", ("bool",))(x),
                                  x.astype(bool))
    np.testing.assert_array_equal(compile_op("cast", ("float64",), "float32",
                                             ("float32",))(x), x.astype(np.float32))
    x32 = x.astype(np.float32)
    assert same_bits(compile_op("cast", ("float32",), "float64", ("float64",))(x32),
                     x32.astype(np.float64)).all()
    i = np.array([0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, -(2 ** 62)], dtype=np.int64)
    for dst in ("int32", "float32", "float64", "bool"):
        np.testing.assert_array_equal(compile_op("cast", ("int64",), dst, (dst,))(i),
                                      i.astype(NP_DTYPES[dst]), err_msg=dst)
    np.testing.assert_array_equal(compile_op("cast", ("int32",), "int64", ("int64",))(
        i.astype(np.int32)), i.astype(np.int32).astype(np.int64))
    b = np.array([False, True])
    for dst in ("int32", "int64", "float32", "float64"):
        np.testing.assert_array_equal(compile_op("cast", ("bool",), dst, (dst,))(b),
                                      b.astype(NP_DTYPES[dst]))


@pytest.mark.parametrize("dt", INTS)
def test_int_pow(dt: str) -> None:
    rng = np.random.default_rng(8)
    a = rng.integers(-20, 20, 4000).astype(dt)
    n = rng.integers(0, 70, 4000).astype(dt)
    got = compile_op("pow", (dt, dt))(a, n)
    np.testing.assert_array_equal(got, np.power(a, n))      # wraps like numpy
    neg = compile_op("pow", (dt, dt))(np.array([1, -1, -1, 2, 0], dtype=dt),
                                      np.array([-3, -3, -2, -1, -5], dtype=dt))
    np.testing.assert_array_equal(neg, [1, -1, 1, 0, 0])    # documented: 1 / x**-n, truncated


@pytest.mark.parametrize("dt", FLOATS)
def test_explicit_vector_operands(dt: str) -> None:
    """Every float primitive on <4 x T> values, against the scalar kernels."""
    x = np.concatenate([specials(dt), np.random.default_rng(9).normal(0, 30, 61)]).astype(dt)
    y = x[::-1].copy()
    for op in UNARY + ("floor", "rint", "sqrt", "abs", "neg"):
        got, want = compile_op(op, (dt,), lanes=4)(x), compile_op(op, (dt,))(x)
        assert same_bits(got, want).all(), op
    for op in ("pow", "floordiv", "remainder", "maximum", "add", "div"):
        got, want = compile_op(op, (dt, dt), lanes=4)(x, y), compile_op(op, (dt, dt))(x, y)
        assert same_bits(got, want).all(), op
    cast = compile_op("cast", (dt,), "int32", ("int32",), lanes=4)(x)
    np.testing.assert_array_equal(cast, compile_op("cast", (dt,), "int32", ("int32",))(x))


@pytest.mark.parametrize("op", UNARY)
def test_loop_is_vectorised_without_libm(op: str) -> None:
    k = compile_op(op, ("float32",))
    assert re.search(r"<(4|8|16) x float>", k.opt_ir), "loop was not vectorised"
    calls = set(re.findall(r"call [^@]*@\"?([\w.]+)", k.opt_ir))
    assert not {c for c in calls if not c.startswith("llvm.")}, calls
    assert not any(c.startswith(("llvm.exp", "llvm.log", "llvm.pow", "llvm.sin", "llvm.cos"))
                   for c in calls), calls
    # float32 lanes throughout: no widening to double anywhere in the loop
    assert not re.search(r"\b(double|fpext|fptrunc)\b", k.opt_ir), op


def test_no_fast_math_flags() -> None:
    for op in UNARY + ("pow",):
        for dt in FLOATS:
            ir_text = compile_op(op, (dt, dt) if op == "pow" else (dt,)).raw_ir
            assert not re.search(r"\b(fast|nnan|ninf|nsz|arcp|contract|afn|reassoc)\b",
                                 ir_text), (op, dt)


def test_primitives_are_methods() -> None:
    assert set(PRIMITIVES) >= {"exp", "pow", "cast", "select", "const", "floordiv"}
    missing = [p for p in PRIMITIVES if not callable(getattr(LLVMScalar, p, None))]
    assert not missing
    assert set(ULP_BOUNDS) == set(UNARY) | {"pow"}
