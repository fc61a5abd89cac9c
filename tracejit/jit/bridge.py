"""The autograd node of a compiled function: its backward runs the compiled backward graph.

All differentiable outputs of one call share one node (one output slot each); its edges lead to
the inputs (explicit and closed-over) that require grad. Saved values are the arrays the forward
graph returned for the backward, plus the primal inputs it reads (version-checked, as in eager).
"""
from __future__ import annotations

import numpy as np

from .. import autograd as ag
from .. import cuda as _cuda


class _CompiledOp:
    name = "compiled"
    saves = ()


class CompiledNode(ag.Node):
    # Tensor.backward's implicit seed of a CUDA output may stay a host 1: the compiled backward
    # takes host 0-d arrays as kernel arguments, which saves a fill launch per step (unless a
    # hook or retain_grad on the output would see the seed)
    takes_host_seed = True

    def __init__(self, entry, saved: list, saved_inputs: list, inputs: list) -> None:
        self.op = _CompiledOp
        self.params = {}
        self.entry = entry
        self.next = tuple(ag._edge(t) for t in inputs)
        self.metas = tuple([(t._data.shape, t.dtype) for t in inputs])
        self.saved = saved
        # (tensor, version) of primal inputs the backward reads
        self.versions = [(t, t._version[0]) for t in saved_inputs]
        self.out = None
        self.freed = False
        self.pre_hooks = None
        self.retains = None
        self.n_out = len(entry.tangent_types)

    def name(self) -> str:
        return "CompiledFunctionBackward"

    def apply(self, grads, Tensor):
        if ag._state["grad"]:
            raise RuntimeError(
                "double backward (create_graph=True) through a tracejit.compile'd function is not "
                "supported; call the function uncompiled (or with backend='eager') when you need "
                "higher-order gradients")
        if self.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Specify retain_graph=True if you "
                "need to backward through the graph a second time.")
        if self.entry.saved_error:
            raise RuntimeError(self.entry.saved_error)
        for t, v in self.versions:
            if t._version[0] != v:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: an input of a compiled function "
                    f"[{t.dtype.name} {list(t.shape)}] is at version {t._version[0]}; expected "
                    f"version {v} instead. Use an out-of-place op or .clone() it first.")
        tangents = []
        on_gpu = self.entry.backend == "cuda" and not self.entry.to_host
        for g, (shape, dt) in zip(grads, self.entry.tangent_types):
            if g is None:       # an output the loss does not use: zeros (on the GPU, a fill)
                tangents.append(_cuda.full(shape, 0, np.dtype(dt).name) if on_gpu and shape
                                else np.zeros(shape, dt))
                continue
            tangents.append(np.asarray(g._data, dtype=dt) if not g.is_cuda else
                            g._data if g._data.dtype == dt else g.to(np.dtype(dt).name)._data)
        outs = self.entry.bwd(tangents + self.saved)
        res = []
        it = iter(outs)
        for has in self.entry.grad_present:
            if has:
                a = next(it)
                res.append(Tensor._make(a if not self.entry.to_host else a.copy_to_host()))
            else:
                res.append(None)
        return res

    def release(self) -> None:
        self.saved = None
        self.freed = True
