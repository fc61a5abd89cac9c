"""The CUDA backend: `compile_graph(g)` fuses a graph (ir/passes/fusion.py) and returns a
`CudaGraph` that runs it on device arrays.

Each fused `Kernel` of the schedule becomes a `KernelRunner` (kernels.py: generated source,
specialised on sizes and on the operands' strides, compiled on first use and cached on disk);
every other node runs through the eager CUDA implementation of its op (eager.py: views, gathers,
scatters, the tiled matmul), exactly as eager mode would run it. Constants are uploaded once.
Inputs may be host arrays (`backend="cuda"` called with CPU tensors: uploaded; 0-d ones stay host
scalars, passed to kernels by value). Outputs are fresh device buffers: a view, an input or an
array returned twice is copied; but the new value of an input the function updates in place is
stored into that input's buffer when its kernel is the input's last reader (codegen/inplace.py)
and the input is contiguous on the GPU, so no copy-back follows.

    %3: f32[] = kernel k0 {mul, add, tanh, sum} %x, %w, %b   ->  one split-reduction launch pair
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph, Node
from ...ir.kernel import Kernel
from ...ir.passes.fusion import Schedule, fuse
from ...ir.passes.onehot import onehot
from ...ops import REGISTRY
from . import array as A
from . import eager
from ..inplace import plan as plan_inplace
from .kernels import KernelRunner


def _owner(a):
    return a.base if getattr(a, "base", None) is not None else a


def _dense(a) -> bool:
    """C-contiguous, as the compiled kernels store (size-1 dims may have any stride)."""
    return all(s == c for s, c, n in zip(a.strides, A.contiguous_strides(a.shape), a.shape)
               if n != 1)


def compile_graph(g: Graph, inplace: dict | None = None) -> CudaGraph:
    """`inplace`: {output index: input index} of the function's in-place updates. Row gathers
    and scatters become one-hot selects (ir/passes/onehot.py) that fuse into row kernels; their
    index checks set the device's error flag, raised at the next synchronisation as other
    CUDA index errors are."""
    run, nchecks = onehot(g)
    if nchecks:
        sched = fuse(run)
        checks = {id(o) for o in sched.graph.outputs[len(sched.graph.outputs) - nchecks:]}
        stored = {id(st.node) for k in sched.steps if isinstance(k, Kernel) for st in k.stores}
        if checks <= stored:
            return CudaGraph(g, sched, inplace or {}, nchecks)
    return CudaGraph(g, fuse(g), inplace or {})


class CudaGraph:
    """Callable: list of arrays (graph inputs) -> list of fresh CudaArrays (graph outputs)."""

    def __init__(self, g: Graph, sched: Schedule, inplace: dict | None = None,
                 nchecks: int = 0) -> None:
        g = sched.graph     # g after fusion's rewrites: the same inputs and outputs, and then
        self._nout = len(g.outputs) - nchecks        # the index checks of the one-hot selects
        checks = {id(o) for o in g.outputs[self._nout:]}
        self.graph, self.schedule = g, sched
        self.kernels: list = []
        self._steps: list = []
        self._consts: dict = {}
        users = g.users()
        outs = {id(o) for o in g.outputs}
        # a scatter into a fresh `full` only this node reads (embedding/gather backward) writes
        # into it instead of copying it first
        self._in_place = {id(n) for n in g.nodes if n.op == "index_put" and
                          n.inputs[0].op == "full" and len(users[id(n.inputs[0])]) == 1 and
                          id(n.inputs[0]) not in outs}
        made = {id(n) for n in g.inputs}       # values in `env` when a step runs
        self._plain: set = set()                # kernel steps that read no constant
        for s in sched.steps:
            if isinstance(s, Kernel):
                r = KernelRunner(s, flags=[q for q, st in enumerate(s.stores)
                                           if id(st.node) in checks])
                self.kernels.append(r)
                ins = [id(v) for v in r.values]
                if all(v in made for v in ins):
                    self._plain.add(len(self._steps))
                self._steps.append(("k", r, ins, [id(st.node) for st in s.stores]))
                made.update(self._steps[-1][3])
            else:
                self._steps.append(("n", s, [id(u) for u in s.inputs], [id(s)]))
                made.add(id(s))
        # step -> [(store, input index)] of the stores that may go into their input's buffer
        self._donors: dict = {}
        self._donated: dict = {}        # id(output) -> input index
        for o, (ii, st, j) in plan_inplace(self._steps, g, inplace or {},
                                           lambda r: True).items():
            self._donors.setdefault(st, []).append((j, ii))
            self._donated[o] = ii
        self._in_ids = [id(n) for n in g.inputs]
        # every output a fresh kernel store, each returned once: returned as they are
        stored = {v for kind, _, _, outs in self._steps if kind == "k" for v in outs}
        oids = [id(o) for o in g.outputs[:self._nout]]
        self._all_fresh = all(v in stored and v not in self._donated for v in oids) and \
            len(set(oids)) == len(oids)

    def describe(self) -> str:
        return "cuda: " + (self.schedule.describe() or "no kernels").replace("\n", "\ncuda: ")

    def __call__(self, arrays: list) -> list:
        g = self.graph
        if len(arrays) != len(g.inputs):
            raise TypeError(f"{g.name}: expected {len(g.inputs)} input arrays, got {len(arrays)}")
        env: dict = {}
        for v, a in zip(self._in_ids, arrays):
            if type(a) is np.ndarray and a.ndim:
                a = A.from_host(a)
            env[v] = a
        for i, (kind, s, ins, outs) in enumerate(self._steps):
            if kind == "k":
                into = None
                if i in self._donors or s.flags:
                    into = [A.index_error_flag() if j in s.flags else None
                            for j in range(len(outs))]
                    for j, ii in self._donors.get(i, ()):
                        a = arrays[ii]
                        if type(a) is A.CudaArray and a.writeable and _dense(a):
                            into[j] = a
                args = [env[v] for v in ins] if i in self._plain else \
                    [env[v] if v in env else self._leaf(n) for v, n in zip(ins, s.values)]
                env.update(zip(outs, s(args, into)))
            else:
                env[id(s)] = self._node(s, env)
        if self._all_fresh:
            return [env[id(o)] for o in g.outputs[:self._nout]]
        inputs = {id(_owner(env[v])) for v in self._in_ids}
        result, taken = [], {id(c) for c in self._consts.values()}
        for o in g.outputs[:self._nout]:
            a = env[id(o)] if id(o) in env else self._leaf(o)
            if not isinstance(a, A.CudaArray):
                a = A.from_host(np.asarray(a, o.type.dtype.np))
            ii = self._donated.get(id(o))
            if ii is not None and a is arrays[ii]:
                pass                    # stored into its input (returned once: see plan)
            elif id(_owner(a)) in inputs or id(_owner(a)) in taken or not a.writeable:
                a = eager.copy(a)
            taken.add(id(_owner(a)))
            result.append(a)
        return result

    def _leaf(self, n: Node):
        """The value of a constant or `full` node (uploaded once; 0-d stays a host scalar)."""
        if n.op == "const":
            v = self._consts.get(id(n))
            if v is None:
                v = self._consts[id(n)] = n.value if n.value.ndim == 0 else \
                    A.from_host(n.value)
            return v
        if n.op == "full":
            return eager.full(n.shape, n.params["value"], n.params["dtype"])
        raise KeyError(f"%{n.name} ({n.op}) has no value")

    def _node(self, n: Node, env: dict):
        if n.op in ("const", "full"):
            return self._leaf(n)
        args = [env[id(u)] if id(u) in env else self._leaf(u) for u in n.inputs]
        op = REGISTRY[n.op]
        if id(n) in self._in_place and isinstance(args[0], A.CudaArray):
            from .indexing import index_put
            return index_put(*args, **n.params, in_place=True)
        if any(isinstance(a, A.CudaArray) for a in args):
            return eager.run(op, args, n.params)
        out = np.asarray(op.eager(*args, **n.params))      # host scalars only: numpy
        if out.ndim == 0:
            return out
        first = out.flat[0] if out.size else None
        if out.size and bool((out == first).all()) and (
                out.dtype.kind != "f" or bool((np.signbit(out) == np.signbit(first)).all())):
            # a host scalar broadcast or reshaped (the backward's seed reaching a view): a fill
            # kernel, where an upload would wait for the work queued before it
            return eager.full(out.shape, out.flat[0].item(), out.dtype.name)
        return A.from_host(out)
