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
import sys
import threading

import llvmlite  # noqa: F401 - absent llvmlite fails this import: how the jit picks a backend
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...ir.graph import Graph, Node, TensorType, infer_type
from ...ir.kernel import Kernel
from ...ir.passes.fusion import Schedule, fuse
from ...ir.passes.onehot import onehot
from ...ops import REGISTRY
from ..inplace import plan as plan_inplace

logger = logging.getLogger("tracejit.codegen")


def compile_graph(g: Graph, inplace: dict | None = None) -> CompiledGraph:
    """Fuse and compile `g`; the result maps input arrays to output arrays. `inplace`: {output
    index: input index}, outputs that are the new value of an input written back by the caller
    (a function's in-place updates); where it is safe the output is written over that input's
    array and returned as that very array. The caller must not then pass, for such an input,
    an array that shares memory with another input (the jit runs those calls eagerly)."""
    run, nchecks = onehot(g)
    run, ndiv = zero_division_checks(run)
    return CompiledGraph(g, fuse(run), nchecks + ndiv, inplace,
                         [_BAD_INDEX] * nchecks + [_ZERO_DIVISION] * ndiv)


_BAD_INDEX = (IndexError, "an index is out of bounds in a row-wise gather or scatter "
                          "(x[arange(n)[:, None], idx]); check its values")
_ZERO_DIVISION = (RuntimeError, "ZeroDivisionError: integer division or remainder by zero")


def zero_division_checks(g: Graph) -> tuple:
    """(graph, number of checks appended to its outputs): `divisor == 0` of every integer
    floordiv and remainder, which eager (numpy: 0 and a warning) and torch raise for, and a
    kernel would silently compute. g itself is not changed."""
    if not any(n.op in ("floordiv", "remainder") and n.type.dtype.is_integer for n in g.nodes):
        return g, 0
    checks: list = []

    def replace(n, ins, out, new):
        if n.op not in ("floordiv", "remainder") or not n.type.dtype.is_integer:
            return None
        r = Node(n.op, ins, n.params, n.type, n.loc, n.name, n.value)
        out.nodes.append(r)
        zero = np.zeros((), ins[1].type.dtype.np)
        c = out.add("const", [], {}, TensorType((), ins[1].type.dtype), n.loc, value=zero)
        c.name = f"{n.name}.z"
        check = out.add("eq", [ins[1], c], {}, infer_type("eq", [ins[1], c], {}), n.loc)
        check.name = f"{n.name}.zcheck"
        checks.append(check)
        return r
    out = g.rewrite(replace)
    out.outputs += checks
    return out, len(checks)


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
    def __init__(self, g: Graph, sched: Schedule, nchecks: int = 0,
                 inplace: dict | None = None, check_errors: list | None = None) -> None:
        """nchecks: outputs at the end of sched.graph's that are checks, raising the
        (exception class, message) of `check_errors` (default: a bad index) where any element
        is set."""
        from .launch import KernelLauncher
        self.graph, self.schedule, self._nchecks = g, sched, nchecks
        self._check_errors = check_errors or [_BAD_INDEX] * nchecks
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
        self._spare: dict = {}
        self._plan_lifetimes()
        self._warm_up()
        check_ids = {id(o) for o in self._run.outputs[len(self._run.outputs) - nchecks:]}
        # index checks are raised as soon as their last one is computed, before any input is
        # written in place (an error must leave the inputs as they were)
        self._check_after = max((i for i, st in enumerate(self._steps)
                                 if check_ids & set(st[3])),
                                default=len(self._steps) - 1 if nchecks else -1)
        self._donors = self._plan_inplace(inplace or {})
        self._program()

    def _fallback(self, k: Kernel, e: Exception) -> _NumpyKernel:
        logger.warning("kernel %s could not be compiled (%s: %s); it runs through numpy",
                       k, type(e).__name__, e)
        return _NumpyKernel(k, f"{type(e).__name__}: {e}")

    def _plan_lifetimes(self) -> None:
        """After which step each value is dead; outside nodes may return views of their inputs,
        so a value lives as long as anything computed from it outside kernels (but for matmul
        and cat, whose results are always new arrays)."""
        out_ids = {id(o) for o in self._run.outputs}
        last: dict = dict.fromkeys(out_ids, len(self._steps))
        for i in range(len(self._steps) - 1, -1, -1):
            kind, step, ins, outs, _ = self._steps[i]
            for v in ins:
                end = i
                if kind == "n" and step.op not in ("matmul", "cat"):    # these never alias
                    end = max(i, last.get(outs[0], i))
                last[v] = max(last.get(v, -1), end)
        self._free_after: list = [[] for _ in self._steps]
        for i, (kind, step, ins, outs, _) in enumerate(self._steps):
            if kind != "k" and not _pooled_node(step):
                continue
            for v in outs:
                end = max(last.get(v, i), i)
                if v not in out_ids and end < len(self._steps):
                    self._free_after[end].append(v)
        self._out_ids = out_ids

    def _plan_inplace(self, inplace: dict) -> dict:
        """{id(output): (input index, load operands)} for the in-place outputs a kernel writes
        over their input's array (codegen/inplace.py), after the index checks."""
        donors: dict = {}
        for o, (ii, s, j) in plan_inplace(self._steps, self._run, inplace,
                                          lambda st: not isinstance(st, _NumpyKernel),
                                          self._check_after + 1).items():
            ins, inp = self._steps[s][2], id(self._run.inputs[ii])
            donors[o] = (ii, tuple((len(ins) + j, n) for n, v in enumerate(ins) if v == inp))
        return donors

    def _warm_up(self) -> None:
        """Compile every kernel for the layout contiguous inputs give (dry run on fakes)."""
        env = {id(n): _fake(n) for n in self._run.inputs}
        for kind, s, ins, outs, types in self._steps:
            if kind == "n":
                n = s
                env[id(n)] = _dry_view(n, env[ins[0]] if ins else None)
                continue
            outs_a = [_fake_like(sh, dt) for sh, dt in types]
            for v, a in zip(outs, outs_a):
                env[v] = a
            if hasattr(s, "plan"):
                try:
                    s.plan([_conform(env[v], ld.value.type.dtype.np, ld.value.shape)
                            for v, ld in zip(ins, s.k.loads)] + outs_a)
                except Exception as e:  # noqa: BLE001
                    idx = self.kernels.index(s)
                    self.kernels[idx] = fb = self._fallback(s.k, e)
                    self._steps = [(a, fb if b is s else b, c, d, t)
                                   for a, b, c, d, t in self._steps]
        # plans made from fakes hold the right strides; keep them (no data pointers inside)

    def describe(self) -> str:
        return self.schedule.describe()

    def _program(self) -> None:
        """The call as flat tuples, so that a call does little more than the kernels' work."""
        run = self._run
        self._inputs = [(id(n), n.type.dtype.np, n.shape) for n in run.inputs]
        prog = []
        for i, (kind, s, ins, outs, types) in enumerate(self._steps):
            free = tuple(self._free_after[i])
            if kind == "n":
                leaves = [None if v in self._known(i) else u for v, u in zip(ins, s.inputs)]
                prog.append((False, s, ins, leaves, outs[0], free))
            else:
                # only what numpy computed outside kernels may come back as a scalar or in
                # another dtype; inputs were checked and kernel outputs are exact
                exact = self._known_exact(i)
                specs = [None if v in exact else (ld.value.type.dtype.np, ld.value.shape)
                         for v, ld in zip(ins, s.k.loads)]
                o = [(v, sh, dt, v in self._out_ids, self._donors.get(v))
                     for v, (sh, dt) in zip(outs, types)]
                prog.append((True, s, ins, specs, o, free))
        self._prog = prog
        nout = len(run.outputs) - self._nchecks
        self._outs = [(id(o), o.type.dtype.np, o) for o in run.outputs[:nout]]
        self._checks = [id(o) for o in run.outputs[nout:]]

    def _known_exact(self, i: int) -> set:
        """Values before step i that are graph inputs or kernel outputs."""
        exact = {id(n) for n in self._run.inputs}
        for kind, _, _, outs, _ in self._steps[:i]:
            if kind == "k":
                exact.update(outs)
        return exact

    def _known(self, i: int) -> set:
        """Values in the environment before step i (inputs and earlier steps' results)."""
        known = {id(n) for n in self._run.inputs}
        for kind, _, _, outs, _ in self._steps[:i]:
            known.update(outs)
        return known

    def __call__(self, arrays: list) -> list:
        if len(arrays) != len(self._inputs):
            raise TypeError(f"{self.graph.name}: expected {len(self._inputs)} input arrays, got "
                            f"{len(arrays)}")
        env: dict = {}
        for (key, dt, shape), a in zip(self._inputs, arrays):
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if (a.dtype is not dt and a.dtype != dt) or a.shape != shape:
                n = self.graph.inputs[len(env)]
                raise TypeError(f"{self.graph.name}: input %{n.name} must be {n.type}, got "
                                f"{a.dtype}{list(a.shape)}")
            env[key] = a
        writable = [ii for ii, _ in self._donors.values() if type(arrays[ii]) is np.ndarray and
                    arrays[ii].flags.writeable] if self._donors else ()
        pool = self._spare      # intermediate buffers, kept from call to call (see _take)
        fresh: set = set()
        for i, (is_kernel, s, ins, extra, outs, free) in enumerate(self._prog):
            if i == self._check_after + 1 and self._checks:
                self._raise_bad_index(env)
            if not is_kernel:
                if s.op == "const":
                    env[outs] = s.value
                else:
                    args = [env[v] if u is None else _leaf(u) for v, u in zip(ins, extra)]
                    if s.op == "matmul" and outs in self._out_ids:
                        # BLAS writes a returned result (a weight gradient) into a recycled
                        # buffer: no page faults, and dropping last step's .grad is free
                        r = np.matmul(*args, out=_fresh(s.type.shape, s.type.dtype.np))
                        fresh.add(id(r))
                    elif _pooled_node(s) and outs not in self._out_ids:
                        buf = _take(pool, s.type.shape, s.type.dtype.np)
                        r = np.matmul(*args, out=buf) if s.op == "matmul" else \
                            np.concatenate(args, axis=s.params["dim"], out=buf)
                    else:
                        r = REGISTRY[s.op].eager(*args, **s.params)
                    if type(r) is not np.ndarray:
                        r = np.asarray(r)
                    elif r.base is None and r.flags.writeable and \
                            not any(r is a for a in args):
                        fresh.add(id(r))  # numpy made it (matmul): an output needs no copy
                    env[outs] = r
            else:
                out_arrays = []
                alias: tuple = ()
                for v, shape, dt, is_out, donor in outs:
                    if donor is not None and donor[0] in writable:
                        a = arrays[donor[0]]        # written in place (see _plan_inplace)
                        fresh.add(id(a))
                        alias += donor[1]
                    elif is_out:
                        a = _fresh(shape, dt)
                        fresh.add(id(a))
                    else:
                        a = _take(pool, shape, dt)
                    env[v] = a
                    out_arrays.append(a)
                loads = []
                for v, spec in zip(ins, extra):
                    a = env[v]
                    if spec is not None:
                        a = _conform(a, *spec)
                    loads.append(a)
                if alias:
                    s.run(loads, out_arrays, alias)
                else:
                    s.run(loads, out_arrays)
            for v in free:
                a = env.pop(v)
                pool.setdefault(a.nbytes, []).append(a)
        if self._checks and self._check_after == len(self._prog) - 1:
            self._raise_bad_index(env)
        result = []
        for v, dt, o in self._outs:
            a = env[v] if v in env else _leaf(o)
            if id(a) in fresh:
                fresh.discard(id(a))      # a second use of the same output gets a copy
            else:
                a = np.array(a, dtype=dt, order="C", copy=True)
            result.append(a)
        return result

    def _raise_bad_index(self, env: dict) -> None:
        for v, (exc, msg) in zip(self._checks, self._check_errors):
            if env[v].any():
                raise exc(f"{self.graph.name}: {msg}")


def _dry_view(n: Node, src) -> np.ndarray:
    """What an outside node gives for a stride-only input: numpy's view for movement ops (it
    takes no data), a contiguous stand-in for everything else."""
    if src is not None and (n.op in ("reshape", "permute", "expand", "detach") or (
            n.op == "index" and all(k[0] in "isn" for k in n.params["key"]))):
        try:
            return np.asarray(REGISTRY[n.op].eager(src, **n.params))
        except ValueError as e:    # numpy needs a copy for this reshape
            logger.debug("no view for %s: %s", n.op, e)
    return _fake(n)


def _fake_like(shape: tuple, dt: np.dtype) -> np.ndarray:
    return as_strided(np.zeros(1, dt), shape, _c_strides(shape, dt.itemsize))


def _conform(a, dt: np.dtype, shape: tuple) -> np.ndarray:
    """The array a kernel reads (numpy may have given a scalar or another dtype)."""
    if type(a) is np.ndarray and a.dtype is dt and a.shape == shape:
        return a
    a = np.asarray(a)
    if a.dtype != dt:
        a = a.astype(dt)
    return a if a.shape == shape else a.reshape(shape)


def _pooled_node(n) -> bool:
    """An outside node whose result the backend allocates (and recycles), not numpy."""
    return isinstance(n, Node) and n.ndim > 0 and n.op in ("matmul", "cat") and \
        n.type.dtype.name in ("float32", "float64")


def _take(pool: dict, shape: tuple, dt: np.dtype) -> np.ndarray:
    """An intermediate buffer, recycled from a dead one of an earlier step or call if one fits.
    The pool lives as long as the compiled graph: a fresh buffer per call costs a page fault
    per 4 KiB (glibc gives freed memory back; W7's backward faulted ~22 MB per step)."""
    nbytes = dt.itemsize
    for s in shape:
        nbytes *= s
    try:
        b = pool[nbytes].pop()       # one atomic step: calls in other threads share the pool
    except (KeyError, IndexError):
        return np.empty(shape, dt)
    return b.reshape(-1).view(np.uint8).view(dt).reshape(shape)


# --- output buffers ---
# Large fresh outputs cost page faults: the kernel zeroes every new page on first touch (2.6 ms
# per 64 MiB here, ~20% of W1's backward). Like PyTorch's caching allocator, keep the big
# outputs we handed out and hand one out again once nobody else references it: it is then as
# fresh as a new array (no Tensor, view or user variable can see it).
_POOL: dict = {}
_POOL_LOCK = threading.Lock()
_POOL_MIN_BYTES = 1 << 16
_POOL_PER_KEY = 64
_POOL_MAX_BYTES = 1 << 30     # never keep more than this alive for reuse
_pooled = [0]


def _fresh(shape: tuple, dt: np.dtype) -> np.ndarray:
    n = dt.itemsize
    for s in shape:
        n *= s
    if n < _POOL_MIN_BYTES:
        return np.empty(shape, dt)
    with _POOL_LOCK:
        lst = _POOL.setdefault((shape, dt.str), [])
        for a in lst:
            # references to a: the list, the loop variable (and getrefcount's argument); to
            # its buffer: a (numpy points every view's base at the buffer). More is a user.
            if sys.getrefcount(a) == _UNUSED[0] and sys.getrefcount(a.base) == _UNUSED[1]:
                return a
        a = _aligned_empty(n, shape, dt)
        if len(lst) < _POOL_PER_KEY and _pooled[0] + n <= _POOL_MAX_BYTES:
            lst.append(a)
            _pooled[0] += n
        return a


def _unused_counts() -> tuple:
    """What getrefcount reports in _fresh's loop for a pooled array nobody else holds, and for
    its buffer (measured once: the convention of counting the argument varies by version)."""
    lst = [np.empty(16, np.uint8)[1:]]
    for a in lst:
        return sys.getrefcount(a), sys.getrefcount(a.base)


_UNUSED = _unused_counts()


def _page_offset() -> int:
    """Where numpy's large arrays start within a page (glibc's mmap chunks: 16 bytes in)."""
    if not _offset:
        _offset.append(np.empty(1 << 25, np.uint8).ctypes.data % 4096)
    return _offset[0]


_offset: list = []


def _aligned_empty(nbytes: int, shape: tuple, dt: np.dtype) -> np.ndarray:
    """np.empty placed at the same offset within its page as numpy's large arrays (the user's
    inputs, usually). Equal offsets matter twice for streaming kernels: their outputs reach
    64-byte alignment at the same element (stream.py), and no load falsely aliases a recent
    store to another stream 4 KiB apart (measured on W1's backward, znver4: outputs 48 bytes
    past the inputs mod 4096 took 2x longer, equal offsets 10% less than any other). The base
    is the owning uint8 buffer."""
    raw = np.empty(nbytes + 4096, np.uint8)
    off = (_page_offset() - raw.ctypes.data) % 4096
    return raw[off:off + nbytes].view(dt).reshape(shape)
