"""Per-op correctness of CUDA eager against CPU eager, for perf/gpu_check.py.

`check(group, (rows, cols))` runs one group of the op table (elementwise ops in chunks,
reductions, movement and indexing, matmul) forward and backward on a CPU and a CUDA copy of the
same data and returns one row per op: (name, ok, max error, note). Sizes are odd on purpose
(37 x 129 on a GPU): several blocks, partial tiles and partial warps.
"""
from __future__ import annotations

import numpy as np

CHUNKS = 4


def groups() -> list:
    return [f"elementwise{i}" for i in range(CHUNKS)] + ["reductions", "movement", "matmul"]


def compare(name, got, want, rtol=2e-5, atol=2e-6) -> tuple:
    err, ok = 0.0, True
    for g, w in zip(got, want):
        if g is None or w is None:
            ok = ok and g is None and w is None
            continue
        if not g.is_cuda:
            return name, False, float("nan"), "result not on cuda"
        a = np.asarray(g.detach().cpu().numpy(), np.float64)
        b = np.asarray(w.detach().numpy(), np.float64)
        if a.shape != b.shape:
            return name, False, float("nan"), f"shape {a.shape} != {b.shape}"
        fin = np.isfinite(b)
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            ok = False
        if fin.any():
            d = np.abs(a[fin] - b[fin])
            err = max(err, float(d.max()))
            ok = ok and bool(np.all(d <= atol + rtol * np.abs(b[fin])))
    return name, ok, err, ""


def _pair(a, rg=False):
    import tracejit as tj
    return tj.tensor(a, requires_grad=rg), tj.tensor(a, device="cuda", requires_grad=rg)


def _elementwise(names, shape, rng) -> list:
    import tracejit as tj
    from tracejit.ops import REGISTRY
    from tracejit.tensor import apply
    rows = []
    r, c = shape
    for name in names:
        op = REGISTRY[name]
        params = {"dtype": "float64"} if name == "cast" else {}
        dts = ["bool"] if op.dtype_rule == "logical" else \
            ["float32", "float64"] + (["int64", "int32"] if op.int_ok else [])
        for dt in dts:
            lo, hi = op.domain
            arrays = []
            for i, s in enumerate([(r, c), (c,), (r, 1)][:op.nin]):
                if i < getattr(op, "cond_inputs", 0) or dt == "bool":
                    arrays.append(rng.random(s) > 0.5)
                elif dt.startswith("int"):
                    arrays.append(rng.integers(1 if lo > 0 else -5, 6, s).astype(dt))
                else:
                    arrays.append(rng.uniform(lo, hi, s).astype(dt))
            rg = dt.startswith("float") and op.vjp is not None
            pairs = [_pair(a, rg and a.dtype.kind == "f") for a in arrays]
            want = apply(op, *[p[0] for p in pairs], **params)
            got = apply(op, *[p[1] for p in pairs], **params)
            gw, gg = [], []
            if want.requires_grad:
                w = rng.standard_normal(want.shape).astype(want.dtype.np)
                (want * tj.tensor(w)).sum().backward()
                (got * tj.tensor(w, device="cuda")).sum().backward()
                gw = [p[0].grad for p in pairs if p[0].requires_grad]
                gg = [p[1].grad for p in pairs if p[1].requires_grad]
            tol = {"rtol": 2e-5, "atol": 2e-6} if dt != "float64" else \
                {"rtol": 1e-10, "atol": 1e-12}
            rows.append(compare(f"{name} {dt}", [got] + gg, [want] + gw, **tol))
    return rows


def _reductions(shape, rng) -> list:
    from tracejit.ops import REGISTRY
    from tracejit.tensor import apply
    rows = []
    r, c = shape
    a = rng.uniform(0.9, 1.1, (r, c, 3)).astype(np.float32)
    for name in ("sum", "prod", "amax", "amin", "all", "any"):
        x = a > 1.0 if name in ("all", "any") else a
        for dims in ((0, 1, 2), (1,), (0,), (0, 2)):
            (xc, xg) = _pair(x, x.dtype.kind == "f")
            want = apply(REGISTRY[name], xc, dims=dims, keepdim=False)
            got = apply(REGISTRY[name], xg, dims=dims, keepdim=False)
            if want.requires_grad:
                want.sum().backward()
                got.sum().backward()
            rows.append(compare(f"{name} dims={dims}", [got, xg.grad], [want, xc.grad],
                                rtol=1e-4, atol=1e-5))
    xc, xg = _pair(rng.standard_normal((r, c)).astype(np.float32))
    for f in ("argmax", "argmin"):
        rows.append(compare(f, [getattr(xg, f)(1), getattr(xg, f)()],
                            [getattr(xc, f)(1), getattr(xc, f)()], rtol=0, atol=0))
    return rows


def _movement(shape, rng) -> list:
    import tracejit as tj
    r, c = shape
    xc, xg = _pair(rng.standard_normal((r, c)).astype(np.float32), True)
    idx = rng.integers(0, r, 2 * r)
    outs = []
    for x in (xc, xg):
        i = tj.tensor(idx, device=x.device)
        ys = [x.t().reshape(-1), x.permute(1, 0)[1::3], x[:, None, 2].expand(r, 4), x.flip(1),
              tj.cat([x, x[:2]], 0), tj.stack([x[0], x[1]], 1), x[i], x[1:, :3][i % (r - 1)],
              x.gather(1, (i[:r] % c).reshape(r, 1)), tj.nn.functional.pad(x, (1, 2)),
              x.softmax(-1), x.log_softmax(0), x.var(1), x.roll(1, 1), x.tril(1)]
        sum(((y * (k + 1.0)).sum() for k, y in enumerate(ys)), tj.tensor(0.0, device=x.device)
            ).backward()
        outs.append(ys)
    names = ["t.reshape", "permute[::3]", "expand", "flip", "cat", "stack", "gather rows",
             "sliced gather", "gather", "pad", "softmax", "log_softmax", "var", "roll", "tril"]
    rows = [compare(n, [g], [w], rtol=1e-4, atol=1e-5) for n, g, w in zip(names, *outs[::-1])]
    rows.append(compare("movement grads", [xg.grad], [xc.grad], rtol=1e-4, atol=1e-4))
    return rows


def _matmul(shape, rng) -> list:
    r, c = shape
    rows = []
    for sa, sb in [((r, c), (c, r + 2)), ((3, r, 7), (7, c)), ((c,), (c, 5)),
                   ((2, 1, r, 5), (3, 5, 4))]:
        (ac, ag), (bc, bg) = (_pair(rng.standard_normal(s).astype(np.float32), True)
                              for s in (sa, sb))
        want, got = ac @ bc, ag @ bg
        want.sum().backward()
        got.sum().backward()
        rows.append(compare(f"matmul {sa}@{sb}", [got, ag.grad, bg.grad],
                            [want, ac.grad, bc.grad], rtol=1e-4, atol=1e-4))
    return rows


def check(group: str, shape: tuple) -> list:
    from tracejit.ops import REGISTRY
    rng = np.random.default_rng(1)
    if group.startswith("elementwise"):
        names = sorted(n for n, op in REGISTRY.items() if op.kind == "elementwise")
        i = int(group[len("elementwise"):])
        return _elementwise(names[i::CHUNKS], shape, rng)
    return {"reductions": _reductions, "movement": _movement, "matmul": _matmul}[group](
        shape, rng)
