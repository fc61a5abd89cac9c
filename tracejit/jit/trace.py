"""Tracing: run a Python function on symbolic Tensors and record every op into a Graph.

While a trace is active every `apply` comes here (tensor.py's hook). A symbolic Tensor's `_data`
is an IR Node (which has `.shape` and `.dtype` like an array). Concrete tensors met during the
trace are either constants (made inside the function: factories, scalars) or implicit inputs
(tensors the function closes over: parameters, buffers, globals), which are read by reference on
every call. Anything that needs a value (`bool(t)`, `.item()`, `.numpy()`, ...) raises
`GraphBreak` with the user's file:line. In-place updates of inputs and implicit inputs are
recorded as mutations, written back after each call. Eager views share memory and traced values
do not, so an in-place update of a view, or a view read after its base changed, breaks the graph.
`.grad` reads and writes come here too: `loss.backward()` inside the function appends the
generated backward to the graph and accumulates into the leaves' `.grad` (replayed after each
call); a float in an optimizer's param group ("lr") can be lifted into an input read on every
call, and guards record the Python state the trace relied on: optimizer state, module
parameters, and the globals, closure variables and attributes the code reads (reads.py).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .. import autograd as ag
from ..ir.graph import Graph, TensorType, infer_type
from ..ops import dtypes as D
from ..ops.base import OUT
from ..tensor import Tensor, WeakScalar, _ndarray, _on_device, _tracer
from .reads import Reads

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GraphBreak(Exception):
    """`retry`: the call runs eagerly and the next one traces again (state that the first
    eager step creates, such as an optimizer's buffers), rather than every call of this
    signature running eagerly."""

    def __init__(self, reason: str, loc: str, retry: bool = False) -> None:
        super().__init__(f"{reason} at {loc}")
        self.reason, self.loc, self.retry = reason, loc, retry


def user_location() -> str:
    """file:line of the innermost frame outside the tracejit package."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not os.path.abspath(fn).startswith(_PKG):
            return f"{os.path.basename(fn)}:{f.f_lineno}"
        f = f.f_back
    return "?"


class Tracer:
    def __init__(self, name: str) -> None:
        self.graph = Graph(name)
        self.created = _Created()
        self.implicit: list = []          # concrete tensors read by reference
        self._implicit_node: dict = {}    # id(tensor) -> input node
        self.mutations: dict = {}         # id(tensor) -> (tensor, original _data)
        self._saved = None
        self.loc_override = None   # while building the backward: the forward op's location
        self.modules: list = []     # nn.Modules called during the trace (guarded on .training)
        self._module_ids: set = set()
        # Views made during the trace, id -> (view, base, times the base was modified when the
        # view was made): eager views share their base's memory, traced values do not, so an
        # in-place update of a view, or a view read after its base changed, breaks the graph
        # (the call runs eagerly) rather than silently using stale values.
        self.views: dict = {}
        self.modified: dict = {}    # id(tensor) -> in-place updates during the trace
        # `.grad` reads: a gradient is read through its owner on every call (the owner's .grad
        # is a new tensor after each backward), and whether it was None is guarded
        self.grad_reads: dict = {}  # id(owner) -> (owner, grad was None)
        self.grad_owner: dict = {}  # id(concrete gradient) -> the tensor it is the .grad of
        self.implicit_src: list = []  # per implicit input: its owner when it is a .grad, or None
        self.value_guards: list = []  # (fn, expected, compare by identity), see guard()
        self.reads = Reads()        # the Python values read by name (globals, attributes, ...)
        self.lifted: dict = {}      # (id(dict), key) -> (dict, key, float value), see lift()
        # loss.backward() inside the trace: .grad assignments are replayed after every call
        self.stand_ins: list = []   # the traced stand-ins of the arguments, in order
        self.grad_orig: dict = {}   # id(owner) -> (owner, .grad before the trace assigned it)
        self.arg_grads: list = []   # arguments accumulated into: their .grad must start None
        self.arg_nonleaf: set = set()   # arguments computed outside with a history (set by
                                        # the caller): backward() cannot reach into it
        self.arg_ids: set = set()   # ids of the argument tensors themselves (set by the caller)
        self.implicit_leaf: list = []   # per implicit input: a leaf (no history) when met
        self.history: dict = {}     # id(tensor) -> the nodes in-place updates gave it
        self.backward_leaves: list = []  # ("arg" | "imp", index) accumulated into by backward
        # id(node) -> [(tensor, its in-place count when the op ran)] for the values its vjp
        # reads: eager's saved-tensor version check, for the backward of the trace
        self.saved_versions: dict = {}
        self.backwarded: dict = {}  # id(loss node) -> retain_graph
        self.on_cuda = False        # a traced value is on the GPU (inputs share one device)

    # --- values ---
    def input(self, t: Tensor | None, type: TensorType, name: str, weak: bool = False) -> Tensor:
        node = self.graph.add_input(type, name)
        node.meta["rg"] = bool(t is not None and t.requires_grad)
        self.on_cuda |= t is not None and _on_device(t._data)
        cls = WeakScalar if weak else Tensor
        t = cls._make(node, node.meta["rg"])
        self.stand_ins.append(t)
        return t

    def node_of(self, t: Tensor):
        if self.views and id(t) in self.views:
            _, base, seen = self.views[id(t)]
            if self.modified.get(id(base), 0) != seen:
                self.graph_break("a view (slice, reshape, transpose, detach, ...) read after its "
                                 "base was modified in place")
        d = t._data
        if type(d) is not _ndarray and not _on_device(d):
            return d
        if id(t) in self.created.ids:
            return self._const(t)
        n = self._implicit_node.get(id(t))
        if n is None:
            n = self.graph.add_input(TensorType(d.shape, D.from_numpy_dtype(d.dtype)),
                                     f"c{len(self.implicit)}")
            n.meta["rg"] = t.requires_grad
            self.on_cuda |= _on_device(d)
            self.implicit.append(t)
            self.implicit_src.append(self.grad_owner.get(id(t)))
            self.implicit_leaf.append(t.grad_fn is None)
            self._implicit_node[id(t)] = n
        return n

    def _const(self, t: Tensor):
        d = t._data if type(t._data) is _ndarray else t._data.copy_to_host()  # (CUDA)
        n = self.graph.const(np.array(d, copy=True), self.loc_override or user_location())
        n.meta["rg"] = False
        return n

    # --- hooks ---
    def hook(self, op, args, params):
        self.check_devices(op, args)
        ins = [self.node_of(a) for a in args]
        loc = self.loc_override or user_location()
        typ = infer_type(op.name, ins, params)
        node = self.graph.add(op.name, ins, params, typ, loc)
        # only floating results take part in autograd, as in eager (x.long() has no gradient)
        rg = bool(ag._state["grad"] and op.vjp is not None and typ.dtype.is_floating_point
                  and any(a.requires_grad for a in args))
        node.meta["rg"] = rg
        node.meta["in_rg"] = tuple(a.requires_grad for a in args)
        # a traced result that requires grad is not a leaf (in-place rules depend on it)
        out = Tensor._make(node, rg, _TRACED if rg else None)
        if _makes_view(op, params):
            self.alias(out, args[0])
        if rg:
            sf = op.saved_for
            saved = [(a, self.modified.get(id(a), 0)) for k, a in enumerate(args)
                     if k in op.saves and (sf is None or ag.needed(args, sf.get(k, ())))]
            if OUT in op.saves:
                saved.append((out, 0))
            self.saved_versions[id(node)] = saved
        return out

    def modified_saved(self, roots: list) -> str | None:
        """Eager's error if a value that the backward from `roots` reads was modified in place
        after the op that saved it (None when none was)."""
        seen, stack = set(), list(roots)
        while stack:
            n = stack.pop()
            if id(n) in seen or not n.meta.get("rg"):
                continue
            seen.add(id(n))
            for t, v in self.saved_versions.get(id(n), ()):
                now = self.modified.get(id(t), 0)
                if now != v:
                    return (f"one of the variables needed for gradient computation has been "
                            f"modified by an inplace operation: [{t.dtype.name} "
                            f"{list(t.shape)}], which is an input of {n.op}, is at version "
                            f"{now}; expected version {v} instead (inside a compiled function). "
                            f"Hint: use an out-of-place op or .clone() it first.")
            stack.extend(n.inputs)
        return None

    def check_devices(self, op, args) -> None:
        """Eager's device rule for the operands of one op: traced values are on the trace's
        device; a tensor made inside the function is on its own (`x + tj.ones(2)` with x on
        the GPU raises, as in eager, rather than compile with the CPU tensor uploaded). A 0-d
        CPU tensor goes with any device, and index operands may stay on the CPU."""
        seen = set()
        for a in args[:{"index": 1, "index_put": 2}.get(op.name, len(args))]:
            if a._is_symbolic:
                seen.add(self.on_cuda)
            elif type(a._data) is not _ndarray:
                seen.add(True)
            elif a._data.ndim:
                seen.add(False)
        if len(seen) > 1:
            raise RuntimeError("Expected all tensors to be on the same device, but found at "
                               "least two devices, cuda:0 and cpu!")

    def module(self, m) -> None:
        """A module called during the trace: its training flag is part of the cache key, and
        its parameters, buffers, children, hooks and the attributes its forward reads are
        guarded (replacing m.weight with a new Parameter, or changing m.scale, retraces instead
        of running the old trace)."""
        if id(m) in self._module_ids:       # (read often: every parameter read calls this)
            return
        self._module_ids.add(id(m))
        self.modules.append(m)
        d = m.__dict__
        cls = type(m).__name__
        for kind in ("_parameters", "_buffers", "_modules"):
            for name, v in d[kind].items():
                self.reads.add(d[kind], name, v, f"{cls}.{name}")
        # entries added since (Sequential.append, a new ModuleDict key, hooks) retrace: the
        # reads above guard only the entries there were
        # (hooks by their handles' ids, in order: one removed and another added, or prepended,
        # retraces)
        sizes = lambda: (len(d["_parameters"]), len(d["_buffers"]), len(d["_modules"]),  # noqa: E731
                         tuple(d["_forward_hooks"]), tuple(d["_forward_pre_hooks"]))
        self.guard(sizes, sizes())
        self.reads.function(m.__call__)          # forward, and what it reads by name
        for hook in (*d["_forward_pre_hooks"].values(), *d["_forward_hooks"].values()):
            self.reads.function(hook)

    def value(self, t: Tensor, what: str):
        raise GraphBreak(f"{what} needs the value of a traced tensor", user_location())

    def graph_break(self, reason: str, retry: bool = False):
        raise GraphBreak(reason, user_location(), retry)

    def lift(self, d: dict, key) -> bool:
        """Trace the float d[key] (an optimizer's learning rate) as a 0-d input read from d on
        every call, so that changing it neither recompiles nor goes stale; False when it is
        not a float (then the caller guards it)."""
        k = (id(d), key)
        if k in self.lifted:
            return True
        v = dict.__getitem__(d, key)            # (d may hook reads of key: a _ParamGroup)
        if not isinstance(v, float):            # (numpy's float64 is one)
            return False
        v = float(v)
        t = Tensor._make(np.array(v))           # read by reference, like a closed-over tensor
        node = self.node_of(t)
        self.implicit_src[-1] = lambda d=d, key=key: dict.__getitem__(d, key)
        self.lifted[k] = (d, key, v)
        # promotes like the Python float it stands for
        dict.__setitem__(d, key, WeakScalar._make(node, False))
        return True

    def guard(self, fn, expected) -> None:
        """The trace is valid while fn() gives `expected` (equal for plain values, the same
        object otherwise): a changed learning rate or a replaced optimizer state retraces."""
        self.value_guards.append((fn, expected, not isinstance(
            expected, (int, float, bool, str, tuple, type(None)))))

    def grad(self, owner: Tensor, value, assign: bool) -> None:
        """A read or a write of owner.grad during the trace."""
        if id(owner) in self.arg_ids:
            # the trace sees an argument through its stand-in: the .grad of the tensor itself
            # (an optimizer over the arguments) would miss what backward() gave the stand-in
            self.graph_break("the .grad of a tensor passed as an argument, used through "
                             "another reference (an optimizer or a closure over the "
                             "arguments); close over such tensors instead of passing them")
        if assign:
            if id(owner) not in self.grad_orig:
                self.grad_orig[id(owner)] = (owner, owner._grad)
            return
        if id(owner) in self.grad_orig:
            return                           # what the trace itself assigned
        d = self.mutations[id(owner)][1] if id(owner) in self.mutations else owner._data
        if type(d) is not _ndarray and not _on_device(d):
            if any(owner is t for t in self.stand_ins):   # an argument: its .grad is not seen
                self.graph_break("reading .grad of an argument inside a compiled function")
            return                           # an intermediate: None, as in eager
        if id(owner) not in self.grad_reads:
            self.grad_reads[id(owner)] = (owner, value is None)
        if value is not None:
            self.grad_owner[id(value)] = owner

    def backward(self, loss: Tensor, gradient, retain_graph, create_graph, inputs) -> None:
        """loss.backward() inside the trace: the generated backward of the graph so far,
        accumulated into the .grad of the leaves (arguments and closed-over tensors) that
        require grad, as eager's engine would."""
        if create_graph or inputs is not None:
            self.graph_break("backward(create_graph=True or inputs=...) inside a compiled "
                             "function")
        if not loss.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn; call requires_grad_() on the inputs you differentiate "
                               "with respect to, or compute the output with grad enabled")
        node = self.node_of(loss)
        if self.backwarded.get(id(node)) is False:
            raise RuntimeError("Trying to backward through the graph a second time (or directly "
                               "access saved tensors after they have already been freed). "
                               "Specify retain_graph=True if you need to backward through the "
                               "graph a second time.")
        self.backwarded[id(node)] = bool(retain_graph)
        bad = self.modified_saved([node])
        if bad:
            raise RuntimeError(bad)
        if gradient is None:
            if int(np.prod(node.shape)) != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                                   f"(this tensor has shape {tuple(node.shape)}); pass "
                                   f"gradient= with the same shape, or reduce it (e.g. .sum())")
            seed = Tensor._make(self.graph.const(np.ones(node.shape, node.dtype)))
        else:
            seed = gradient if isinstance(gradient, Tensor) else Tensor._make(
                self.graph.const(np.asarray(gradient, node.dtype)))
            if tuple(seed.shape) != tuple(node.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                                   f"{tuple(seed.shape)} and output[0] has a shape of "
                                   f"{tuple(node.shape)}.")
        # the tensors from outside that require grad, with every value each has had in the
        # trace (its input, then each in-place update under no_grad): the leaf gathers the
        # gradient of all of them, as eager's AccumulateGrad does
        owners = [(t, "arg", i, self.graph.inputs[i]) for i, t in enumerate(self.stand_ins)]
        owners += [(t, "imp", j, self._implicit_node[id(t)]) for j, t in enumerate(self.implicit)]
        owners = [o for o in owners if o[3].meta.get("rg")]
        from .differentiate import input_grads
        with ag.no_grad():
            grads = input_grads(self, {id(node): seed}, [n for *_, n in owners])
            for (owner, kind, i, _), g in zip(owners, grads):
                if g is None:
                    continue
                if i in self.arg_nonleaf if kind == "arg" else not self.implicit_leaf[i]:
                    self.graph_break("backward() inside a compiled function reaches a tensor "
                                     "computed outside it (not a leaf)")
                if owner._hooks:
                    self.graph_break("backward() inside a compiled function reaches a tensor "
                                     "with hooks (register_hook)")
                self.views.pop(id(g), None)   # a fresh .grad, not a view of a backward value
                self.backward_leaves.append((kind, i))
                if id(owner) in self.grad_orig:
                    cur = owner._grad
                elif kind == "arg":
                    self.arg_grads.append(i)
                    cur = None                # guarded: the argument's .grad is None
                else:
                    cur = owner.grad          # read (and guarded) as the call finds it
                    if cur is not None:       # accumulated in place, as eager does: a
                        cur.add_(g)           # reference to the old .grad sees the sum
                        continue
                owner.grad = g if cur is None else cur + g

    def versions_of(self, node) -> list:
        """Every value the tensor behind graph input `node` had in the trace: the input, then
        each in-place update."""
        owner = next((t for t, n in zip(self.stand_ins, self.graph.inputs) if n is node), None)
        if owner is None:
            owner = next((t for t in self.implicit if self._implicit_node[id(t)] is node), None)
        return [node] + (self.history.get(id(owner), []) if owner is not None else [])

    def alias(self, out: Tensor, src: Tensor) -> None:
        """Mark `out` as a view of `src`: eager may hand back src itself (contiguous())."""
        v = self.views.get(id(src))
        base = v[1] if v else src
        self.views[id(out)] = (out, base, self.modified.get(id(base), 0))

    def grad_effects(self) -> list:
        """(owner, final .grad) of every tensor whose .grad the trace assigned."""
        return [(owner, owner._grad) for owner, _ in self.grad_orig.values()]

    def inplace(self, t: Tensor, result: Tensor):
        if id(t) in self.views:
            self.graph_break("in-place update of a view (slice, reshape, transpose, detach, ...) "
                             "inside a compiled function")
        self.modified[id(t)] = self.modified.get(id(t), 0) + 1
        if id(t) not in self.mutations:
            self.mutations[id(t)] = (t, t._data)
        concrete = type(t._data) is _ndarray or _on_device(t._data)
        if result.requires_grad and not t.requires_grad and (
                concrete or any(t is s for s in self.stand_ins)):
            # eager gives the input a history (x.mul_(s) with s requiring grad); a compiled
            # call would return it without one, and gradients through it would be lost
            self.graph_break("an in-place update that makes an input require grad")
        if concrete:
            self.node_of(t)  # a closed-over tensor: make sure it is an implicit input
        t._data = self.node_of(result)
        self.history.setdefault(id(t), []).append(t._data)
        if result.requires_grad:
            t.requires_grad = True
            # a traced value updated with grad has a history, as in eager (a second in-place
            # update is no leaf's); a concrete tensor's grad_fn stays a leaf's
            t.grad_fn = None if concrete else _TRACED

    # --- activation ---
    def __enter__(self):
        self._saved = dict(_tracer)
        _tracer.update(hook=self.hook, value=self.value, inplace=self.inplace,
                       active=True, created=self.created, module=self.module, grad=self.grad,
                       guard=self.guard, backward=self.backward, lift=self.lift,
                       alias=self.alias)
        _tracer["break"] = self.graph_break
        _tracer["device"] = lambda: "cuda" if self.on_cuda else "cpu"   # of traced values
        return self

    def __exit__(self, *exc):
        _tracer.clear()
        _tracer.update(self._saved)
        return False

    def restore_mutated(self) -> None:
        """Give mutated concrete tensors their arrays back (the trace wrote symbolic values),
        and every .grad the trace assigned its value from before."""
        for t, data in self.mutations.values():
            if type(data) is _ndarray or _on_device(data):
                t._data = data
        for owner, grad in self.grad_orig.values():
            owner._grad = grad
        for d, key, v in self.lifted.values():
            dict.__setitem__(d, key, v)


def _makes_view(op, params: dict) -> bool:
    """Whether eager gives a view of the first argument: movement ops but flip/copy/cat (flip
    copies, as in PyTorch), basic indexing (ints, slices, None)."""
    if op.kind == "movement":
        return op.name not in ("flip", "copy", "cat")
    return op.name == "index" and all(k[0] in "isn" for k in params["key"])


class _TracedNode:
    """grad_fn of traced intermediate results: autodiff happens on the graph, not here."""

    @staticmethod
    def name() -> str:
        return "TracedBackward"

    pre_hooks = retains = None


_TRACED = _TracedNode()


class _Created(list):
    """Tensors made inside the traced function (kept alive so their ids stay unique)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set = set()

    def append(self, t) -> None:
        super().append(t)
        self.ids.add(id(t))
