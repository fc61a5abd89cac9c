"""Branch-free, vectorisable double-precision transcendental kernels emitted as LLVM IR.

This module owns the polynomial / range-reduction code behind ``LLVMScalar.exp`` and
friends for f64 inputs: exp, expm1, log, log1p, pow, tanh, erf, sin and cos, evaluated in f64.
float32 pow also comes here (extend, compute, round once), as does every float32 function
under ``LLVMScalar(native_f32=False)``; the other float32 kernels, computed in float32
lanes, are in ``mathlib32``.  Every kernel is straight-line code built from +, *, fma, bit
manipulation and selects, so a loop calling it vectorises; nothing here calls libm or an
LLVM intrinsic that lowers to libm.  Techniques: Cody-Waite
range reduction with a 40-bit ln2 head for exp/log, double-double ("dd") arithmetic with
exact fma products where a result must be more accurate than one double (exp, log, pow),
an integer Payne-Hanek reduction by pi/2 that is exact for every finite double (sin/cos),
and Chebyshev near-minimax polynomials fitted with mpmath (see ``mathcoef``).  ``prec``
is ``'d'`` for f64 results and ``'s'`` for f32 results (shorter polynomials, ~2^-38).
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
def exp_core(e: Emitter, a_hi: D, a_lo: D | float, prec: str) -> tuple[I, D, D]:
    """exp(a_hi + a_lo) = 2**k * (1 + t_hi + t_lo) for |a_hi| <= 1400, |a_lo| << 1.

    Cody-Waite: k = rint(a / ln2), r = a - k*ln2 with ln2 = LN2_HI (40 bits, so k*LN2_HI
    and the subtraction are exact) + LN2_LO.  Then expm1(r) = r + r^2/2 + r^3 P(r) with
    the leading terms kept in double-double (relative error ~2^-60 for prec 'd').
    """
    kf, k = round_int(e, a_hi * K.LOG2E)
    r1, r2 = two_sum(a_hi - kf * K.LN2_HI, a_lo - kf * K.LN2_LO)
    h_hi, h_lo = two_prod(e, r1 * 0.5, r1)
    t_hi, t_lo = fast_two_sum(r1, h_hi)
    tail = (r1 * r1) * (r1 * e.poly(r1, K.EXP_D if prec == "d" else K.EXP_S))
    t_hi, t_lo = fast_two_sum(t_hi, t_lo + (h_lo + (r2 + r2 * r1 + tail)))
    return k, t_hi, t_lo


def exp(e: Emitter, x: D, prec: str) -> D:
    k, t_hi, t_lo = exp_core(e, e.clamp(x, -746.0, 710.0), 0.0, prec)
    p_hi, p_lo = fast_two_sum(1.0, t_hi)
    return scale2(e, p_hi + (p_lo + t_lo), k)     # overflow -> inf, gradual underflow


def expm1(e: Emitter, x: D, prec: str) -> D:
    k, t_hi, t_lo = exp_core(e, e.clamp(x, -50.0, 710.0), 0.0, prec)
    # k <= 60: expm1 = 2^k (p_hi + p_lo) - 1 with 1 + t = p_hi + p_lo in double-double and
    # the subtraction done by TwoSum, so there is no cancellation error; k = 0 gives t.
    p_hi, p_lo = fast_two_sum(1.0, t_hi)
    p_lo = p_lo + t_lo
    two_k = pow2(e, e.sel(k > 100, 100, k))
    s, err = two_sum(p_hi * two_k, e.d(-1.0))
    small = s + (err + p_lo * two_k)
    big = scale2(e, p_hi + p_lo, k)               # k > 60: the -1 is far below half an ulp
    res = e.sel(k > 60, big, small)
    return e.sel(x.eq(0.0), x, res)               # expm1(-0) = -0


def tanh(e: Emitter, x: D, prec: str) -> D:
    ax = e.fabs(x)
    z = x * x
    small = x + (x * z) * e.poly(z, K.TANH_D if prec == "d" else K.TANH_S)
    # |x| >= 0.55: tanh = 1 - 2 / (exp(2|x|) + 1), all in double-double.
    k, t_hi, t_lo = exp_core(e, 2.0 * e.sel(ax > 22.0, 22.0, ax), 0.0, prec)
    p_hi, p_lo = fast_two_sum(1.0, t_hi)
    two_k = pow2(e, k)                                # k <= 64 here
    d_hi, d_lo = fast_two_sum(p_hi * two_k, 1.0)
    d_lo = d_lo + (p_lo + t_lo) * two_k
    q_hi = 2.0 / d_hi
    q_lo = (e.fma(-q_hi, d_hi, 2.0) - q_hi * d_lo) / d_hi
    s, err = fast_two_sum(1.0, -q_hi)
    big = e.copysign(s + (err - q_lo), x)
    res = e.sel(ax < 0.55, small, big)
    return e.sel(x.eq(0.0), x, res)


def erf(e: Emitter, x: D, prec: str) -> D:
    ax = e.fabs(x)
    z = x * x
    small = x + x * e.poly(z, K.ERF_D if prec == "d" else K.ERF_S)
    # |x| >= 0.875: erf = 1 - exp(-x^2) R(|x|), R = erfc*exp(x^2) fitted piecewise in
    # u = |x| - centre; x^2 is exact as a dd pair, so exp(-x^2) is accurate to ~0.5 ulp.
    a = e.sel(ax > 6.0, 6.0, ax)                      # erf(6) rounds to 1
    z_hi, z_lo = two_prod(e, a, a)
    k, t_hi, t_lo = exp_core(e, -z_hi, -z_lo, prec)
    ez = (1.0 + (t_hi + t_lo)) * pow2(e, k)           # k >= -52: no underflow
    table = K.ERFC_D if prec == "d" else K.ERFC_S
    r1, r2, r3 = a >= K.ERFC_EDGES[1], a >= K.ERFC_EDGES[2], a >= K.ERFC_EDGES[3]

    def pick(vals):
        return e.sel(r3, vals[3], e.sel(r2, vals[2], e.sel(r1, vals[1], vals[0])))
    centres = [(lo + hi) / 2 for lo, hi in zip(K.ERFC_EDGES[:-1], K.ERFC_EDGES[1:])]
    u = a - pick(centres)
    acc = pick([c[-1] for c in table])
    for j in range(len(table[0]) - 2, -1, -1):        # Horner with per-lane coefficients
        acc = e.intr("fmuladd", acc, u, pick([c[j] for c in table]))
    big = e.copysign(1.0 - ez * acc, x)
    res = e.sel(ax < 0.875, small, big)
    return e.sel(x.eq(0.0), x, res)


# ---------------------------------------------------------------- log family
def log_core(e: Emitter, u: D, c_over_u: D | float, k_adj: I | int, prec: str) -> tuple[D, D]:
    """log(u) + c_over_u as a double-double, for positive normal finite u.

    u = 2^k m with m in [sqrt(1/2), sqrt(2)); f = m - 1 (exact), s = f / (2 + f) in dd and
    log(m) = 2 atanh(s) = 2s + 2s^3/3 + s^5 R(s^2), the first two terms in dd and R a fit.
    Relative error ~2^-65 (prec 'd'), enough for pow's y*log(x) up to |y log x| ~ 745.
    """
    ix = e.bits(u)
    k = (ix - K.SQRT_HALF_BITS) >> 52
    f = e.from_bits(ix - (k << 52)) - 1.0
    d_hi, d_lo = fast_two_sum(2.0, f)
    s_hi = f / d_hi
    s_lo = (e.fma(-s_hi, d_hi, f) - s_hi * d_lo) / d_hi
    z_hi, z_lo = two_prod(e, s_hi, s_hi)
    z_lo = z_lo + (2.0 * s_hi) * s_lo
    c_hi, c_lo = two_prod(e, s_hi, z_hi)                  # s^3
    c_lo = c_lo + (s_hi * z_lo + s_lo * z_hi)
    g_hi, g_lo = two_prod(e, c_hi, K.TT_HI)               # (2/3) s^3
    g_lo = g_lo + (c_hi * K.TT_LO + c_lo * K.TT_HI)
    tail = (c_hi * z_hi) * e.poly(z_hi, K.LOG_D if prec == "d" else K.LOG_S)
    kf = e.i2d(k + k_adj)
    a1, b1 = two_sum(kf * K.LN2_HI, 2.0 * s_hi)           # kf * LN2_HI is exact
    a2, b2 = two_sum(a1, g_hi)
    lo = (b1 + b2) + ((2.0 * s_lo + g_lo) + (tail + (kf * K.LN2_LO + c_over_u)))
    return fast_two_sum(a2, lo)


def _log_specials(e: Emitter, x: D, res: D, lo: float) -> D:
    """log-like special values: x == lo -> -inf, x < lo -> NaN, inf -> inf, NaN -> NaN."""
    res = e.sel(x.eq(lo), -INF, e.sel(x < lo, NAN, res))
    return e.sel(x.eq(INF), INF, e.sel(e.isnan(x), x, res))


def log(e: Emitter, x: D, prec: str) -> D:
    sub = x < K.MIN_NORMAL                                # scale subnormals by 2^54
    xs = e.sel(sub, x * 18014398509481984.0, x)
    ok = e.and_(x > 0.0, x < INF)
    hi, lo = log_core(e, e.sel(ok, xs, 1.0), 0.0, e.sel(sub, -54, 0), prec)
    return _log_specials(e, x, hi + lo, 0.0)


def log1p(e: Emitter, x: D, prec: str) -> D:
    # log1p(x) = log(u) + c/u where u + c == 1 + x exactly (TwoSum); u >= 2^-53 is normal.
    u, c = two_sum(e.d(1.0), x)
    ok = e.and_(x > -1.0, x < INF)
    us = e.sel(ok, u, 1.0)
    hi, lo = log_core(e, us, e.sel(ok, c, 0.0) / us, 0, prec)
    res = _log_specials(e, x, hi + lo, -1.0)
    return e.sel(x.eq(0.0), x, res)                       # log1p(-0) = -0


def pow(e: Emitter, x: D, y: D, prec: str) -> D:
    """C99/numpy pow: exp(y log|x|) in double-double, then the IEEE special cases."""
    ax = e.fabs(x)
    sub = ax < K.MIN_NORMAL
    ok = e.and_(ax > 0.0, ax < INF)
    axs = e.sel(ok, e.sel(sub, ax * 18014398509481984.0, ax), 1.0)
    l_hi, l_lo = log_core(e, axs, 0.0, e.sel(sub, -54, 0), prec)
    p_hi, p_lo = two_prod(e, y, l_hi)
    p_lo = p_lo + y * l_lo
    big = e.or_(e.fabs(p_hi) >= 1000.0, e.isnan(p_hi))  # y*log|x| overflows/underflows
    p_hi = e.sel(big, e.copysign(1000.0, p_hi), p_hi)
    k, t_hi, t_lo = exp_core(e, p_hi, e.sel(big, 0.0, p_lo), prec)
    q_hi, q_lo = fast_two_sum(1.0, t_hi)
    res = scale2(e, q_hi + (q_lo + t_lo), k)
    y_neg = y < 0.0
    # |x| == 0 or inf, and y == +-inf: the result is 0 or inf.
    res = e.sel(ax.eq(0.0), e.sel(y_neg, INF, 0.0), res)
    res = e.sel(ax.eq(INF), e.sel(y_neg, 0.0, INF), res)
    y_inf = e.fabs(y).eq(INF)
    res = e.sel(y_inf, e.sel(ax.eq(1.0), 1.0, e.sel(e.b.icmp_unsigned(
        "==", ax < 1.0, y_neg), INF, 0.0)), res)
    # Sign: negative x (including -0 and -inf) with an odd integer y.  Every double
    # >= 2^53 is even, and y*0.5 is then still an integer, so no range test is needed.
    y_int = e.trunc(y).eq(y)
    hy = y * 0.5
    y_odd = e.and_(y_int, e.b.fcmp_unordered("!=", e.trunc(hy).v, hy.v))
    x_signed = e.bits(x) < 0
    res = e.sel(e.and_(x_signed, y_odd), -res, res)
    finite_neg = e.and_(x < 0.0, x > -INF)
    res = e.sel(e.and_(finite_neg, e.b.not_(y_int), e.fabs(y) < INF), NAN, res)
    res = e.sel(e.or_(e.isnan(x), e.isnan(y)), NAN, res)
    return e.sel(e.or_(y.eq(0.0), x.eq(1.0)), 1.0, res)


# ---------------------------------------------------------------- sin / cos
def reduce_pio2(e: Emitter, ax: D) -> tuple[D, D, I]:
    """Payne-Hanek: |x| = r + q*pi/2 with |r| <= pi/4, exact for every finite double.

    x = M 2^E (M < 2^53).  Bits of 2/pi above 2^(2-E) only add multiples of 4 to
    x*2/pi, so a 192-bit window of 2/pi starting there (gathered from a table) is
    multiplied by M with 32-bit limbs; the top 2 bits are q mod 4 and the next ~115
    bits the fraction, absolute error < 2^-116 (the worst double is ~2^-61 from a
    multiple of pi/2, so r keeps ~55 correct bits).  All integer ops, no branches.
    """
    ix = e.bits(ax)
    m = (ix & 0xFFFFFFFFFFFFF) | 0x10000000000000
    j0 = (ix.lshr(52) - 1075) + 62                        # table bit for 2^-(E-1)
    j0 = e.sel(j0 > 1033, 1033, e.sel(j0 < 0, 0, j0))
    wi, sh = j0.lshr(5), j0 & 31
    t = [e.table_load(K.TWO_OVER_PI_BITS, "__tracejit_2_over_pi", wi + n) for n in range(7)]
    # limbs v[0] (least significant) .. v[5] of the 192-bit window
    v = [(((t[n] << 32) | t[n + 1]) << sh).lshr(32) for n in range(5, -1, -1)]
    m0, m1 = m & 0xFFFFFFFF, m.lshr(32)
    a = [m0 * vj for vj in v]                             # 32x32 -> 64 bit, exact
    b = [m1 * vj for vj in v[:5]]
    mask, carry, p = 0xFFFFFFFF, None, []
    for j in range(6):                                    # columns, with carries
        col = a[j] & mask
        if j >= 1:
            col = col + a[j - 1].lshr(32) + (b[j - 1] & mask)
        if j >= 2:
            col = col + b[j - 2].lshr(32)
        if carry is not None:
            col = col + carry
        p.append(col & mask)
        carry = col.lshr(32)
    f_hi = ((p[5] << 32) | p[4]) << 2 | p[3].lshr(30)     # fraction bits 2^-1 .. 2^-64
    f_lo = ((p[3] << 32) | p[2]) << 2 | p[1].lshr(30)     # 2^-65 .. 2^-128
    q = p[5].lshr(30) + f_hi.lshr(63)                     # round to nearest quadrant
    # signed fraction (units of 2^-64) -> double-double, exactly
    s, err = two_sum(e.i2d(f_hi & ~0x7FF), e.i2d(f_hi & 0x7FF))
    h, lo = fast_two_sum(s, err + e.i2d(f_lo.lshr(11)) * 2.0 ** -53)
    r_hi = h * K.PIO2_HI_2M64
    r_lo = e.fma(h, K.PIO2_HI_2M64, -r_hi) + (h * K.PIO2_LO_2M64 + lo * K.PIO2_HI_2M64)
    return r_hi, r_lo, q


def _sincos(e: Emitter, x: D, prec: str, want_sin: bool) -> D:
    ax = e.fabs(x)
    r_hi, r_lo, q = reduce_pio2(e, ax)
    small = ax < K.PIO4
    r_hi, r_lo, q = e.sel(small, ax, r_hi), e.sel(small, 0.0, r_lo), e.sel(small, 0, q)
    z = r_hi * r_hi
    sin_r = r_hi + ((r_hi * z) * e.poly(z, K.SIN_D if prec == "d" else K.SIN_S)
                    + r_lo * (1.0 - 0.5 * z))
    hz = 0.5 * z
    w = 1.0 - hz                                          # fdlibm-style compensated cos
    cos_r = w + (((1.0 - w) - hz) + ((z * z) * e.poly(z, K.COS_D if prec == "d" else K.COS_S)
                                     - r_hi * r_lo))
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


def sin(e: Emitter, x: D, prec: str) -> D:
    return _sincos(e, x, prec, True)


def cos(e: Emitter, x: D, prec: str) -> D:
    return _sincos(e, x, prec, False)
