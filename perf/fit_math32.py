"""Offline fit of the float32 polynomial coefficients in tracejit/codegen/llvm/mathcoef.py.

    python -m perf.fit_math32          (needs mpmath; prints the tables to paste)

Not imported by tracejit: the coefficients are stored as data in mathcoef.py. Each kernel
polynomial p(t) approximates a target g(t) on an interval; the error that matters is the
error it causes in the final result, so the fit minimises max |w(t) (g(t) - p(t))| with a
weight w (e.g. r^2 / e^r for exp's r^2 Q(r) term). Method: the target is evaluated with
mpmath at 60 digits on 3000 Chebyshev nodes, a weighted least-squares fit in the Chebyshev
basis is turned into a near-minimax one by Lawson's iteration (reweighting by the error),
then the coefficients are rounded to float32 one at a time from the lowest degree, refitting
the higher ones after each rounding (so the rounding of the large low-order terms is absorbed
by the others). The printed figure is log2 of the max weighted error of the rounded
polynomial evaluated exactly.
"""
from __future__ import annotations

import itertools

import mpmath as mp
import numpy as np

mp.mp.dps = 60
NODES = 3000


def _nodes(lo: float, hi: float) -> np.ndarray:
    k = np.arange(NODES)
    return (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / NODES)


def _lawson(basis: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 60) -> np.ndarray:
    """Weighted minimax of basis @ c ~ y with weights w (Lawson's iteration)."""
    lam = np.full(len(y), 1.0 / len(y))
    c = None
    for _ in range(iters):
        s = np.sqrt(lam) * w
        c = np.linalg.lstsq(basis * s[:, None], y * s, rcond=None)[0]
        err = np.abs(w * (basis @ c - y))
        lam = lam * err
        lam /= lam.sum()
    return c


def fit(g, lo: float, hi: float, deg: int, weight=None, fixed: tuple = ()) -> list[float]:
    """float32 monomial coefficients c[0..deg] of p(t) ~ g(t) on [lo, hi].

    ``fixed`` pins the lowest coefficients to the given values (already float32)."""
    t = _nodes(lo, hi)
    y = np.array([float(g(mp.mpf(float(v)))) for v in t])
    w = np.ones_like(t) if weight is None else np.array(
        [float(weight(mp.mpf(float(v)))) for v in t])
    coeffs = [float(np.float32(c)) for c in fixed]
    while len(coeffs) <= deg:
        j = len(coeffs)
        resid = y - sum(c * t ** i for i, c in enumerate(coeffs))
        basis = np.stack([t ** i for i in range(j, deg + 1)], axis=1)
        scale = np.abs(basis).max(axis=0)              # column scaling for conditioning
        c = _lawson(basis / scale, resid, w) / scale
        coeffs.append(float(np.float32(c[0])))
    err = max(abs(float(weight(mp.mpf(float(v))) if weight else 1.0)
                  * float(g(mp.mpf(float(v))) - sum(mp.mpf(c) * mp.mpf(float(v)) ** i
                                                    for i, c in enumerate(coeffs))))
              for v in _nodes(lo, hi)[::3])
    return coeffs, float(np.log2(err)) if err > 0 else -np.inf


def _series_safe(f, small):
    """g(t) with a removable singularity at 0: use ``small`` (a series) very near 0."""
    return lambda t: small(t) if abs(t) < mp.mpf("1e-20") else f(t)


LN2 = mp.log(2)
PIO4 = mp.pi / 4
TARGETS = {
    # exp: e^r = 1 + r + r^2 Q(r), |r| <= ln2/2 (+ a margin for the rounding of k)
    "EXP_F": (_series_safe(lambda r: (mp.exp(r) - 1 - r) / r ** 2, lambda r: mp.mpf(0.5)),
              -0.3467, 0.3467, 5, lambda r: r ** 2 / mp.exp(r)),
    # expm1 for |x| < ln2 without reduction: x + x^2 Q(x)
    "EXPM1_F": (_series_safe(lambda r: (mp.exp(r) - 1 - r) / r ** 2, lambda r: mp.mpf(0.5)),
                -0.6932, 0.6932, 6, lambda r: r ** 2 / abs(mp.expm1(r)) if r else 0),
    # log: log1p(f) = f - f^2/2 + f^3 P(f), f in [sqrt(1/2) - 1, sqrt(2) - 1]
    "LOG_F": (_series_safe(lambda f: (mp.log1p(f) - f + f ** 2 / 2) / f ** 3,
                           lambda f: mp.mpf(1) / 3),
              -0.2929, 0.4143, 8, lambda f: abs(f ** 3 / mp.log1p(f)) if f else 0),
    # tanh: x + x^3 P(x^2), |x| < 0.55
    "TANH_F": (_series_safe(lambda z: (mp.tanh(mp.sqrt(z)) - mp.sqrt(z)) / mp.sqrt(z) ** 3,
                            lambda z: -mp.mpf(1) / 3),
               0.0, 0.3026, 4, lambda z: z * mp.sqrt(z) / mp.tanh(mp.sqrt(z)) if z else 0),
    # erf: x + x P(x^2), |x| < 0.875
    "ERF_F": (_series_safe(lambda z: mp.erf(mp.sqrt(z)) / mp.sqrt(z) - 1,
                           lambda z: 2 / mp.sqrt(mp.pi) - 1),
              0.0, 0.7657, 6, lambda z: mp.sqrt(z) / mp.erf(mp.sqrt(z)) if z else 1),
    # sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2), |r| <= pi/4
    "SIN_F": (_series_safe(lambda z: (mp.sin(mp.sqrt(z)) - mp.sqrt(z)) / mp.sqrt(z) ** 3,
                           lambda z: -mp.mpf(1) / 6),
              0.0, float(PIO4 ** 2) * 1.0001, 3,
              lambda z: z * mp.sqrt(z) / mp.sin(mp.sqrt(z)) if z else 0),
    "COS_F": (_series_safe(lambda z: (mp.cos(mp.sqrt(z)) - 1 + z / 2) / z ** 2,
                           lambda z: mp.mpf(1) / 24),
              0.0, float(PIO4 ** 2) * 1.0001, 2, lambda z: z ** 2 / mp.cos(mp.sqrt(z))),
}
ERFC_EDGES = (0.875, 1.8, 3.95)


def erfc_pieces(deg: int = 8):
    """R(x) = erfc(x) e^(x^2) in u = x - centre on each piece; weight e^(-x^2) / erf(x)."""
    out = []
    for lo, hi in itertools.pairwise(ERFC_EDGES):
        c = (lo + hi) / 2
        out.append(fit(lambda u, c=c: mp.erfc(u + c) * mp.exp((u + c) ** 2), lo - c, hi - c,
                       deg, lambda u, c=c: mp.exp(-(u + c) ** 2) / mp.erf(u + c)))
    return out


def main() -> None:
    for name, (g, lo, hi, deg, w) in TARGETS.items():
        coeffs, err = fit(g, lo, hi, deg, w)
        print(f"{name} = (  # weighted fit err 2^{err:.1f}")
        print("    " + ", ".join(repr(c) for c in coeffs) + ",\n)")
    print("ERFC_F = (  # R(x) = erfc(x) e^(x^2) in u = x - centre")
    for coeffs, err in erfc_pieces():
        print(f"    (  # err 2^{err:.1f}\n        " + ", ".join(repr(c) for c in coeffs)
              + ",\n    ),")
    print(")")


if __name__ == "__main__":
    main()
