"""The LLVM CPU backend: `compile_graph(g)` fuses a graph and returns a `CompiledGraph` that runs
it on numpy arrays.

Fusion (`ir/passes/fusion.py`) yields a schedule of kernels and outside nodes. Each kernel is
lowered (`kernel.py`) and compiled at O3 for this CPU (`engine.py`) up front, for the stride
pattern that contiguous inputs give (found by a dry run of the schedule's views on stride-only
arrays); another layout compiles its own variant on first use. Outside nodes run through the op
table's numpy implementation (matmul is BLAS through numpy). A call allocates fresh outputs,
recycles intermediate buffers once nothing reads them (views included), and returns fresh
C-contiguous arrays. A kernel that cannot be lowered runs its nodes through numpy, with a warning.
"""
from __future__ import annotations

import logging

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...ir.graph import Graph, Node
from ...ir.kernel import Kernel
from ...ir.passes.fusion import Schedule, fuse
from ...ir.passes.onehot import onehot
from ...ops import REGISTRY

logger = logging.getLogger("tracejit.codegen")


def compile_graph(g: Graph) -> CompiledGraph:
    """Fuse and compile `g`; the result maps input arrays to output arrays."""
    run, nchecks = onehot(g)
    return CompiledGraph(g, fuse(run), nchecks)


class _NumpyKernel:
    """A kernel whose lowering failed: its nodes, run one by one through numpy."""

    def __init__(self, k: Kernel, reason: str) -> None:
        self.k, self.reason = k, reason

    def __str__(self) -> str:
        return f"{self.k} (numpy: {self.reason})"

    def run(self, ins: list, outs: list) -> None:
        env = {id(ld.value): a for ld, a in zip(self.k.loads, ins)}
        for n in self.k.nodes:
            args = [env[id(u)] if id(u) in env else _leaf(u) for u in n.inputs]
            env[id(n)] = np.asarray(REGISTRY[n.op].eager(*args, **n.params))
        for s, o in zip(self.k.stores, outs):
            o[...] = env[id(s.node)]


def _leaf(n: Node) -> np.ndarray:
    if n.op == "const":
        return n.value
    return np.asarray(REGISTRY[n.op].eager(**n.params))


def _c_strides(shape: tuple, itemsize: int) -> tuple:
    out, s = [], itemsize
    for n in reversed(shape):
        out.append(s)
        s *= max(n, 1)
    return tuple(reversed(out))


def _fake(node: Node) -> np.ndarray:
    """A stride-only stand-in for a contiguous array of node's type (never read)."""
    dt = node.type.dtype.np
    return as_strided(np.zeros(1, dt), node.shape, _c_strides(node.shape, dt.itemsize))


class CompiledGraph:
    def __init__(self, g: Graph, sched: Schedule, nchecks: int = 0) -> None:
        from .launch import KernelLauncher
        self.graph, self.schedule, self._nchecks = g, sched, nchecks
        self._run = sched.graph       # g, or g rewritten with index checks as extra outputs
        self.kernels: list = []
        self._steps: list = []
        for s in sched.steps:
            if isinstance(s, Kernel):
                try:
                    runner = KernelLauncher(s)
                except Exception as e:  # noqa: BLE001 - any lowering gap falls back to numpy
                    runner = self._fallback(s, e)
                self.kernels.append(runner)
                self._steps.append(("k", runner, [id(ld.value) for ld in s.loads],
                                    [id(st.node) for st in s.stores],
                                    [(st.node.shape, st.node.type.dtype.np) for st in s.stores]))
            else:
                self._steps.append(("n", s, [id(u) for u in s.inputs], [id(s)], None))
        self._plan_lifetimes()
        self._warm_up()

    def _fallback(self, k: Kernel, e: Exception) -> _NumpyKernel:
        logger.warning("kernel %s could not be compiled (%s: %s); it runs through numpy",
                       k, type(e).__name__, e)
        return _NumpyKernel(k, f"{type(e).__name__}: {e}")

    def _plan_lifetimes(self) -> None:
        """After which step each value is dead; outside nodes may return views of their inputs,
        so a value lives as long as anything computed from it outside kernels."""
        out_ids = {id(o) for o in self._run.outputs}
        last: dict = {}
        for i in range(len(self._steps) - 1, -1, -1):
            kind, _, ins, outs, _ = self._steps[i]
            for v in ins:
                end = i
                if kind == "n":
                    end = max(i, last.get(outs[0], i))
                last[v] = max(last.get(v, -1), end)
        self._free_after: list = [[] for _ in self._steps]
        for i, (kind, _, ins, outs, _) in enumerate(self._steps):
            if kind != "k":
                continue
            for v in outs:
                if v not in out_ids:
                    self._free_after[max(last.get(v, i), i)].append(v)
        self._out_ids = out_ids

    def _warm_up(self) -> None:
        """Compile every kernel for the layout contiguous inputs give (dry run on fakes)."""
        env = {id(n): _fake(n) for n in self._run.inputs}
        for kind, s, ins, outs, types in self._steps:
            if kind == "n":
                n = s
                if n.op in ("reshape", "permute", "expand") or (
                        n.op == "index" and all(k[0] in "isn" for k in n.params["key"])):
                    try:
                        env[id(n)] = np.asarray(REGISTRY[n.op].eager(env[ins[0]], **n.params))
                        continue
                    except Exception:  # noqa: BLE001 - a view numpy cannot take: a copy
                        pass
                env[id(n)] = _fake(n)
                continue
            outs_a = [_fake_like(sh, dt) for sh, dt in types]
            for v, a in zip(outs, outs_a):
                env[v] = a
            if hasattr(s, "plan"):
                try:
                    s.plan([_cast_view(env[v], ld.value) for v, ld in zip(ins, s.k.loads)]
                           + outs_a)
                except Exception as e:  # noqa: BLE001
                    idx = self.kernels.index(s)
                    self.kernels[idx] = fb = self._fallback(s.k, e)
                    self._steps = [(a, fb if b is s else b, c, d, t)
                                   for a, b, c, d, t in self._steps]
        # plans made from fakes hold the right strides; keep them (no data pointers inside)

    def describe(self) -> str:
        return self.schedule.describe()

    def __call__(self, arrays: list) -> list:
        g = self.graph
        if len(arrays) != len(g.inputs):
            raise TypeError(f"{g.name}: expected {len(g.inputs)} input arrays, got {len(arrays)}")
        env: dict = {}
        for n, a in zip(g.inputs, arrays):
            a = np.asarray(a)
            if a.dtype != n.type.dtype.np or a.shape != n.shape:
                raise TypeError(f"{g.name}: input %{n.name} must be {n.type}, got "
                                f"{a.dtype}{list(a.shape)}")
            env[id(n)] = a
        pool: dict = {}
        fresh: set = set()
        for i, (kind, s, ins, outs, types) in enumerate(self._steps):
            if kind == "n":
                n = s
                if n.op == "const":
                    env[id(n)] = n.value
                else:
                    env[id(n)] = np.asarray(REGISTRY[n.op].eager(
                        *(env[v] if v in env else _leaf(u) for v, u in zip(ins, n.inputs)),
                        **n.params))
            else:
                out_arrays = []
                for v, (sh, dt) in zip(outs, types):
                    if v in self._out_ids:
                        a = np.empty(sh, dt)
                        fresh.add(id(a))
                    else:
                        a = _take(pool, sh, dt)
                    env[v] = a
                    out_arrays.append(a)
                s.run([_cast_view(env[v], ld.value) for v, ld in zip(ins, s.k.loads)],
                      out_arrays)
            for v in self._free_after[i]:
                a = env.pop(v)
                pool.setdefault(a.nbytes, []).append(a)
        result = []
        outputs = self._run.outputs
        for o in outputs[len(outputs) - self._nchecks:]:
            bad = env[id(o)]
            if bad.any():
                raise IndexError(f"{g.name}: an index is out of bounds in a row-wise gather or "
                                 f"scatter (x[arange(n)[:, None], idx]); check its values")
        for o in outputs[:len(outputs) - self._nchecks]:
            a = env[id(o)] if id(o) in env else _leaf(o)
            if id(a) in fresh:
                fresh.discard(id(a))      # a second use of the same output gets a copy
            else:
                a = np.array(a, dtype=o.type.dtype.np, order="C", copy=True)
            result.append(a)
        return result


def _fake_like(shape: tuple, dt: np.dtype) -> np.ndarray:
    return as_strided(np.zeros(1, dt), shape, _c_strides(shape, dt.itemsize))


def _cast_view(a: np.ndarray, node: Node) -> np.ndarray:
    """The array a kernel reads for node (numpy may have given a scalar or another dtype)."""
    a = np.asarray(a)
    want = node.type.dtype.np
    if a.dtype != want:
        a = a.astype(want)
    if a.shape != node.shape:
        a = a.reshape(node.shape)
    return a


def _take(pool: dict, shape: tuple, dt: np.dtype) -> np.ndarray:
    """An intermediate buffer, recycled from an earlier kernel's dead output if one fits."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    bufs = pool.get(nbytes)
    if bufs:
        b = bufs.pop()
        return b.reshape(-1).view(np.uint8).view(dt).reshape(shape)
    return np.empty(shape, dt)
