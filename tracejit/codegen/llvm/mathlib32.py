"""Branch-free, vectorisable float32 transcendental kernels, computed in float32 lanes.

This module owns what ``LLVMScalar`` emits for float32 exp, expm1, log, log1p, tanh, erf, sin
and cos: straight-line f32/i32 code (f32 +, *, fma, bit operations, selects; sin/cos also use
i64 lanes and three table gathers), so that AVX-512 runs 16 lanes per instruction with no
conversion to f64 and no libm call. Each kernel keeps its final error near 0.5 ulp by doing
the one or two cancelling steps exactly (FastTwoSum/TwoProduct with fma) and everything else
in plain float32; the schemes, in short:

- exp: Cody-Waite k = rint(x/ln2), r = x - k ln2 with a 16-bit ln2 head (k*head exact), e^r =
  1 + r + r^2 Q(r); 2^k applied in two exact steps so that subnormal results round once.
- expm1: |x| < ln2 a direct x + x^2 Q(x) (no 2^k - 1 cancellation); else 2^k p + (2^k - 1)
  by one fma (2^k - 1 is exact for the k where it matters).
- log/log1p: x = 2^k m, m in [sqrt(1/2), sqrt(2)), f = m - 1 exact, log1p(f) = f - f^2/2 +
  f^3 P(f); k ln2_hi + f is summed by FastTwoSum so the cancellation for k = -1 is exact;
  log1p adds c/u, the rounding error of u = 1 + x (TwoSum).
- tanh: |x| < 0.55 odd polynomial; else 1 - 2/(e^2|x| + 1), three plain roundings on a
  quotient <= 0.5 (the cheapest form that stays within 1 ulp).
- erf: |x| < 0.875 x + x P(x^2); else 1 - 2^k (1 + p) R(|x|), x^2 exact as a pair, R =
  erfc e^(x^2) in two pieces, the last two steps fused by fma.
- sin/cos: |x| < pi/4 uses r = x; otherwise a float32-specific Payne-Hanek reduction that is
  exact for every finite float32 (three 32-bit words of 2/pi per exponent, gathered from a
  768-word table, times the 24-bit significand in i64 lanes; the 62-bit fixed-point remainder
  becomes a float pair). A branch on |x| would stop the loop vectoriser, so the reduction
  is computed for every lane. Measured with perf/llvm_math.py's loop (znver4, one thread,
  |x| < 100): this path 2.1 ns/element, of which ~0.9 are the gathers; a 3-part fma
  Cody-Waite path alone 0.75 (but wrong past |x| ~ 1e6); Cody-Waite plus a select of this
  reduction 2.4; Cody-Waite plus the f64 reduction of ``mathlib`` 5.6; numpy 0.55.

Coefficients are in ``mathcoef`` (``_F``, fitted by perf/fit_math32.py). Accuracy and special
values: see ``scalar``'s docstring and tests/test_llvm_scalar.py.
"""
from __future__ import annotations

from . import mathcoef as K
from .mathir import (
    INF,
    NAN,
    D,
    Emitter,
    I,
    fast_two_sum,
    pow2,
    round_int,
    scale2,
    two_prod,
    two_sum,
)


# ---------------------------------------------------------------- exp family
def exp_core(e: Emitter, a: D, a_lo: D | None = None) -> tuple[I, D]:
    """e^(a + a_lo) = 2^k (1 + p) for |a| <= 150 (|a_lo| << ulp(a)); NaN gives NaN p.

    k = rint(a log2e) (magic-number rounding: no fptosi poison), r = a - k ln2 by two fma
    with ln2 = LN2_HI_F (16 bits, so k*LN2_HI_F and the first subtraction are exact) +
    LN2_LO_F, then p = e^r - 1 = r + r^2 Q(r), |r| <= ln2/2.
    """
    kf, k = round_int(e, a * K.LOG2E_F)
    r = e.fma(-kf, K.LN2_LO_F, e.fma(-kf, K.LN2_HI_F, a))
    if a_lo is not None:
        r = r + a_lo
    return k, e.fma(r * r, e.poly(r, K.EXP_F), r)


def exp(e: Emitter, x: D) -> D:
    # Past the clamps the result is inf (e^89 > FLT_MAX) or rounds to 0 (e^-104 < 2^-150).
    k, p = exp_core(e, e.clamp(x, -104.0, 89.0))
    return scale2(e, 1.0 + p, k)


def expm1(e: Emitter, x: D) -> D:
    small = e.fma(x * x, e.poly(x, K.EXPM1_F), x)
    # Below -20 the result rounds to -1; 2^k - 1 is exact for -24 <= k <= 24, and for k < -24
    # rounds to -1 as the result does. Above k = 64 the -1 is far below an ulp: compute
    # 2^64 (1 + p) and scale the rest exactly (2^128 itself is not a float32).
    k, p = exp_core(e, e.clamp(x, -20.0, 89.0))
    k1 = e.sel(k > 64, 64, k)
    two_k = pow2(e, k1)
    big = e.fma(two_k, p, two_k - 1.0) * pow2(e, k - k1)
    res = e.sel(e.fabs(x) < K.LN2_HI_F, small, big)
    return e.sel(x.eq(0.0), x, res)                       # expm1(-0) = -0


def tanh(e: Emitter, x: D) -> D:
    ax = e.fabs(x)
    z = x * x
    small = e.fma(x * z, e.poly(z, K.TANH_F), x)
    # |x| >= 0.55: tanh = 1 - 2 / (e^2a + 1), e^2a + 1 = 2^k p + (2^k + 1) in one fma (2^k + 1
    # is exact while it matters, k <= 23). Three roundings (d, q, 1 - q) on a q <= 0.5: at
    # most ~1.1 ulp in theory, 1 over all float32. (Carrying d and q as float pairs brings
    # ~7x fewer misrounded results but costs 45% more time.) tanh rounds to 1 from |x| =
    # 9.01, so a is clamped to 9.5.
    k, p = exp_core(e, 2.0 * e.sel(ax > 9.5, 9.5, ax))
    two_k = pow2(e, k)
    big = e.copysign(1.0 - 2.0 / e.fma(two_k, p, two_k + 1.0), x)
    res = e.sel(ax < 0.55, small, big)
    return e.sel(x.eq(0.0), x, res)                       # tanh(-0) = -0


def erf(e: Emitter, x: D) -> D:
    ax = e.fabs(x)
    small = e.fma(x, e.poly(x * x, K.ERF_F), x)           # keeps -0
    # |x| >= 0.875: erf = 1 - e^(-x^2) R(|x|) with R = erfc e^(x^2) fitted in two pieces in
    # u = |x| - centre; x^2 = z_hi + z_lo exactly, so e^(-x^2) = 2^k (1 + p) is accurate to
    # ~0.5 ulp, and (1 + p) R and 1 - 2^k (...) are single fmas.
    a = e.sel(ax > K.ERFC_EDGES_F[-1], K.ERFC_EDGES_F[-1], ax)
    z_hi, z_lo = two_prod(e, a, a)
    k, p = exp_core(e, -z_hi, -z_lo)
    second = a >= K.ERFC_EDGES_F[1]
    lo_c = (K.ERFC_EDGES_F[0] + K.ERFC_EDGES_F[1]) / 2
    hi_c = (K.ERFC_EDGES_F[1] + K.ERFC_EDGES_F[2]) / 2
    u = a - e.sel(second, hi_c, lo_c)
    first_t, second_t = K.ERFC_F
    acc = e.sel(second, second_t[-1], first_t[-1])
    for j in range(len(first_t) - 2, -1, -1):           # Horner, per-lane coefficients
        acc = e.intr("fmuladd", acc, u, e.sel(second, second_t[j], first_t[j]))
    big = e.copysign(e.fma(-pow2(e, k), e.fma(p, acc, acc), 1.0), x)
    return e.sel(ax < K.ERFC_EDGES_F[0], small, big)


# ---------------------------------------------------------------- log family
def log_core(e: Emitter, u: D, c_over_u: D | float, k_adj: I | int) -> tuple[D, D]:
    """log(u) + c_over_u as an unnormalised pair (hi, lo), for positive normal finite u.

    u = 2^k m, m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), log1p(f) = f - f^2/2 + f^3 P(f).
    hi + lo = k LN2_HI_F + f exactly (FastTwoSum: |k LN2_HI_F| >= |f| unless k = 0); the
    rest, |.| < |result| / 4, goes into lo.
    """
    ix = e.bits(u)
    k = (ix - K.SQRT_HALF_BITS_F) >> 23
    f = e.from_bits(ix - (k << 23)) - 1.0
    kf = e.i2d(k + k_adj)
    hi, err = fast_two_sum(kf * K.LN2_HI_F, f)
    g = (f * f) * e.fma(f, e.poly(f, K.LOG_F), -0.5)
    return hi, err + (g + (kf * K.LN2_LO_F + c_over_u))


def _log_specials(e: Emitter, x: D, res: D, lo: float) -> D:
    """res where lo < x < inf; else x == lo -> -inf, x < lo or NaN -> NaN, inf -> inf.

    The kernel ran on whatever x held there: plain arithmetic, garbage but never poison."""
    other = e.sel(x.eq(lo), -INF, e.sel(x > lo, x, NAN))
    return e.sel(e.and_(x > lo, x < INF), res, other)


def log(e: Emitter, x: D) -> D:
    sub = x < K.MIN_NORMAL_F                              # scale subnormals by 2^24
    hi, lo = log_core(e, e.sel(sub, x * 16777216.0, x), 0.0, e.sel(sub, -24, 0))
    return _log_specials(e, x, hi + lo, 0.0)


def log1p(e: Emitter, x: D) -> D:
    # log1p(x) = log(u) + c/u where u + c == 1 + x exactly (TwoSum); u >= 2^-24 is normal.
    u, c = two_sum(e.d(1.0), x)
    hi, lo = log_core(e, u, c / u, 0)
    res = _log_specials(e, x, hi + lo, -1.0)
    return e.sel(x.eq(0.0), x, res)                       # log1p(-0) = -0


# ---------------------------------------------------------------- sin / cos
def reduce_pio2(e: Emitter, ax: D) -> tuple[D, D, I]:
    """Payne-Hanek for float32: ax = q pi/2 + r_hi + r_lo, |r| <= pi/4, for finite ax >= 1.

    With ax = M 2^(be-150), F = M W 2^-32 mod 2^64 (W: the 96-bit window of 2/pi for the
    exponent be, ``K.PIO2_WINDOWS_F``) is frac(ax 2/pi / 4) in units of 2^-64, short by less
    than one unit. Three 24x32-bit products in i64 lanes give it (wrapping arithmetic is
    exactly mod 2^64); its top two bits, rounded, are q mod 4 and the signed rest the
    remainder in units of 2^-62 quadrants. The closest float32 to a multiple of pi/2 is
    2^-29.2 away (x = 7.729179e28, bits 0x6f79be45; found by running this reduction over
    all float32 in numpy), so the 62 fraction bits leave > 30 correct ones.
    """
    w = Emitter(e.b, e.lanes)                             # i64 / f64 values of this shape

    def wide(v: I) -> I:
        return I(w, e.b.zext(v.v, w.it))
    ix = e.bits(ax)
    be = ix.lshr(23)
    m = wide((ix & 0x7FFFFF) | 0x800000)
    words = [wide(e.table_load(K.PIO2_WINDOWS_F, "__tracejit_pio2_windows_f32", be * 3 + j))
             for j in range(3)]
    f = ((m * words[0]) << 32) + m * words[1] + (m * words[2]).lshr(32)
    g = f + (1 << 61)
    q = g.lshr(62)
    fr = (g & ((1 << 62) - 1)) - (1 << 61)                # signed, |fr| <= 2^61
    hi = D(e, e.b.sitofp(fr.v, e.ft))
    lo = D(e, e.b.sitofp((fr - I(w, e.b.fptosi(hi.v, w.it))).v, e.ft))
    r_hi = hi * K.PIO2_HI_2M62_F
    r_lo = e.fma(hi, K.PIO2_HI_2M62_F, -r_hi) + e.fma(hi, K.PIO2_LO_2M62_F,
                                                       lo * K.PIO2_HI_2M62_F)
    return r_hi, r_lo, I(e, e.b.trunc(q.v, e.it))


def _sincos(e: Emitter, x: D, want_sin: bool) -> D:
    ax = e.fabs(x)
    r_hi, r_lo, q = reduce_pio2(e, ax)
    small = ax < K.PIO4_F
    r_hi, r_lo, q = e.sel(small, ax, r_hi), e.sel(small, 0.0, r_lo), e.sel(small, 0, q)
    z = r_hi * r_hi
    corr = e.fma(r_lo * z, -0.5, r_lo)                    # r_lo cos(r), to first order
    sin_r = r_hi + e.fma(r_hi * z, e.poly(z, K.SIN_F), corr)
    hz = 0.5 * z
    w = 1.0 - hz                                          # fdlibm-style compensated cos
    cos_r = w + (((1.0 - w) - hz) + e.fma(z * z, e.poly(z, K.COS_F), -(r_hi * r_lo)))
    odd = (q & 1).ne(0)
    if want_sin:
        val = e.sel(odd, cos_r, sin_r)
        neg = e.b.xor((q & 2).ne(0), x < 0.0)
    else:
        val = e.sel(odd, sin_r, cos_r)
        neg = ((q + 1) & 2).ne(0)
    res = e.sel(neg, -val, val)
    res = e.sel(e.or_(e.isnan(x), ax.eq(INF)), NAN, res)
    return e.sel(x.eq(0.0), x, res) if want_sin else res


def sin(e: Emitter, x: D) -> D:
    return _sincos(e, x, True)


def cos(e: Emitter, x: D) -> D:
    return _sincos(e, x, False)
