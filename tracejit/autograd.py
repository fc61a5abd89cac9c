"""Grad mode, graph nodes and the backward engine.

A `Node` is what `tensor.grad_fn` points to: it holds the op, the inputs its vjp reads (with their
version counters at save time) and one edge per input (the input's `grad_fn` and output slot, or
the leaf tensor itself). The engine walks the graph iteratively (no recursion: a chain of 100 000
ops is fine) in dependency order, calls each node's vjp, sums gradients flowing into the same
slot, and accumulates into leaves' `.grad` or captures them for `autograd.grad`. This module knows
Tensor only by duck typing; tensor.py imports it, not the other way round.
"""
from __future__ import annotations

import functools
import inspect
import sys
import weakref

_state = {"grad": True}


def is_grad_enabled() -> bool:
    return _state["grad"]


class _Mode:
    """Grad mode `mode` inside a with block (the base of no_grad and its kin)."""
    mode = True

    def __init__(self, mode: bool | None = None) -> None:
        if mode is not None:
            self.mode = mode

    def __enter__(self):
        self.prev = _state["grad"]
        _state["grad"] = self.mode

    def __exit__(self, *exc):
        _state["grad"] = self.prev
        return False


class _GradMode(_Mode):
    """Base of no_grad / enable_grad / set_grad_enabled: context manager and decorator."""

    def __new__(cls, orig_func=None):
        # `@no_grad` without parentheses decorates directly, as in torch 2.x
        if orig_func is None or cls is set_grad_enabled or not callable(orig_func):
            return super().__new__(cls)
        return cls()(orig_func)

    def __init__(self, orig_func=None) -> None:
        pass                        # (the class's mode; set_grad_enabled sets its own)

    def __call__(self, fn):
        mode = self.mode
        if inspect.isgeneratorfunction(fn):
            return _generator_in_mode(fn, mode)

        @functools.wraps(fn)
        def wrapper(*a, **k):
            with _Mode(mode):
                return fn(*a, **k)
        return wrapper


def _generator_in_mode(fn, mode: bool):
    """A decorated generator function runs its body in `mode` at every resumption (torch),
    not only in the call that makes the generator."""
    @functools.wraps(fn)
    def wrapper(*a, **k):
        gen = fn(*a, **k)
        try:
            with _Mode(mode):
                resp = gen.send(None)
            while True:
                try:
                    req = yield resp
                except GeneratorExit:
                    with _Mode(mode):
                        gen.close()
                    raise
                except BaseException as e:  # noqa: BLE001 - thrown in by the caller: pass on
                    with _Mode(mode):
                        resp = gen.throw(e)
                else:
                    with _Mode(mode):
                        resp = gen.send(req)
        except StopIteration as e:
            return e.value
    return wrapper


class no_grad(_GradMode):
    mode = False


class enable_grad(_GradMode):
    mode = True


class set_grad_enabled(_GradMode):
    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.prev = _state["grad"]
        _state["grad"] = self.mode  # takes effect when called, as torch's does

    def __enter__(self):
        pass

    def __call__(self, fn):
        _state["grad"] = self.prev
        return super().__call__(fn)


class Meta:
    """Shape and dtype of an input whose values the vjp does not read (they are not saved)."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = shape
        self.dtype = dtype

    @property
    def ndim(self):
        return len(self.shape)


def needed(inputs, readers) -> bool:
    """Whether a saved input is read by the gradient of one of `readers` (op.saved_for)."""
    for k in readers:
        if inputs[k].requires_grad:
            return True
    return False


class Node:
    """A recorded op application. Subclasses (compiled functions) override `apply`."""
    __slots__ = ("op", "params", "next", "saved", "versions", "metas", "out", "freed",
                 "pre_hooks", "retains", "view_v", "__weakref__")
    n_out = 1

    def __init__(self, op, params, inputs, out) -> None:
        self.op = op
        self.params = params
        saves, sf = op.saves, op.saved_for
        nxt, metas, saved, versions = [], [], [], []
        for i, t in enumerate(inputs):  # one pass: this runs for every recorded op
            nxt.append(_edge(t))
            metas.append((t._data.shape, t.dtype))
            if i in saves and (sf is None or needed(inputs, sf.get(i, ()))):
                saved.append(t)
                versions.append(t._version[0])
            else:
                saved.append(None)
                versions.append(0)
        self.next = tuple(nxt)
        self.metas = tuple(metas)
        self.saved = tuple(saved)
        self.versions = tuple(versions)
        # the output is kept as data plus version box; a fresh Tensor wraps it at backward so
        # that double backward sees this node as its grad_fn without a reference cycle
        self.out = (out._data, out._version, out._version[0]) if -1 in saves else None
        self.freed = False
        self.pre_hooks = None
        self.retains = None
        self.view_v = None  # for a view output: (its base's grad_fn at creation,)

    def name(self) -> str:
        return "".join(p.capitalize() for p in self.op.name.split("_")) + "Backward0"

    def __repr__(self) -> str:
        return f"<{self.name()} object>"

    def _unpack(self, Tensor):
        if self.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time.")
        ins = []
        for t, v, (shape, dtype) in zip(self.saved, self.versions, self.metas):
            if t is None:
                ins.append(Meta(shape, dtype))
                continue
            if t._version[0] != v:
                _modified(t, v, self)
            ins.append(t)
        out = None
        if self.out is not None:
            data, box, v = self.out
            if box[0] != v:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: the output of {self.name()} is at version "
                    f"{box[0]}; expected version {v} instead. Use an out-of-place op (or .clone()"
                    f" it first).")
            out = Tensor._make(data, True, self, box)
        return ins, out

    def apply(self, grads, Tensor):
        ins, out = self._unpack(Tensor)
        res = self.op.vjp(grads[0], out, *ins, **self.params)
        return res

    def release(self) -> None:
        if any(s is not None for s in self.saved) or self.out is not None:
            self.freed = True
        self.saved = (None,) * len(self.saved)
        self.out = None


def _modified(t, v, node):
    raise RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an inplace "
        f"operation: [{t.dtype.name} {list(t.shape)}], which is an input of {node.name()}, is at "
        f"version {t._version[0]}; expected version {v} instead. Hint: use an out-of-place op "
        f"(x = x + y instead of x += y) or .clone() the tensor before modifying it.")


def _edge(t):
    if not t.requires_grad:
        return None
    fn = t.grad_fn
    if fn is None:
        return (t, 0)            # leaf: accumulate into t.grad
    v = getattr(fn, "view_v", None)  # (subclasses such as CompiledNode may not set it)
    if v is not None and v[0] is not t._base.grad_fn:
        # the base was modified in place under autograd after the view was taken: PyTorch
        # would rebuild the view's history; tracejit refuses rather than backpropagate
        # through the view's stale graph
        raise RuntimeError(
            f"a view ({t.dtype.name} {list(t.shape)}) is used after its base was modified in "
            f"place; its autograd history is stale. Take the view again after the in-place "
            f"write (or .clone() it before).")
    return (fn, t._out_idx)


class RemovableHandle:
    def __init__(self, container, item) -> None:
        self._ref = weakref.ref(container) if not isinstance(container, list) else None
        self._container = container
        self._item = item

    def remove(self) -> None:
        try:
            self._container.remove(self._item)
        except ValueError:
            pass


# --- the engine ---


def _collect(root_keys):
    """Dependency counts of every node reachable from the roots (iterative DFS)."""
    deps: dict = {}
    stack = list(root_keys)
    seen = set()
    while stack:
        node = stack.pop()
        if id(node) in seen or _is_leaf_key(node):
            continue
        seen.add(id(node))
        for e in node.next:
            if e is None:
                continue
            deps[e[0]] = deps.get(e[0], 0) + 1
            stack.append(e[0])
    return deps


def _is_leaf_key(k) -> bool:
    return not isinstance(k, Node)


def _needed(roots, targets):
    """Nodes on some path from a root to a target (only they run in autograd.grad)."""
    needed: set = set()
    state: dict = {}
    for r in roots:
        stack = [(r, 0)]
        while stack:
            node, i = stack.pop()
            if _is_leaf_key(node):
                continue
            if i == 0:
                if id(node) in state:
                    continue
                state[id(node)] = False
            if i < len(node.next):
                stack.append((node, i + 1))
                e = node.next[i]
                if e is not None:
                    stack.append((e[0], 0))
                continue
            hit = any(e is not None and (e in targets or (_is_leaf_key(e[0]) and
                                                         e[0] in targets) or
                                         id(e[0]) in needed) for e in node.next)
            if hit:
                needed.add(id(node))
    return needed


def run_backward(Tensor, roots, grads, *, retain_graph=False, create_graph=False, inputs=None,
                 accumulate=True, allow_unused=False):
    """Backpropagate `grads` from `roots`. With `inputs` and accumulate=False: return their
    gradients (autograd.grad); with accumulate=True: fill `.grad` of leaves (of `inputs` only,
    when given)."""
    if len(roots) == 1 and inputs is None and accumulate and not create_graph and \
            _one_node_to_leaves(roots[0], grads[0], Tensor, retain_graph):
        return None
    buffers: dict = {}
    ready = []
    root_edges = []
    for t, g in zip(roots, grads):
        e = _edge(t)
        if e is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn; call requires_grad_() on the inputs you differentiate "
                               "with respect to, or compute the output with grad enabled")
        root_edges.append((e, g))
    deps = _collect([e[0] for e, _ in root_edges])
    targets = None
    non_leaves = []                 # (tensor, position) of inputs that have a history
    if inputs is not None:
        targets = {}                # key -> positions in `inputs` (a tensor may repeat)
        for i, t in enumerate(inputs):
            e = _edge(t)
            if e is None:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not "
                                   f"require grad")
            leaf = _is_leaf_key(e[0])
            targets.setdefault(e[0] if leaf else e, []).append(i)
            if not leaf:
                non_leaves.append((t, i))
        needed = _needed([e[0] for e, _ in root_edges], targets)
    captured = [None] * (len(inputs) if inputs is not None else 0)
    stored_ids = {id(g._data) for _, g in root_edges}
    for (key, idx), g in root_edges:
        _add(buffers, key, idx, g)
        # identity, not `in`: `in` would call Tensor.__eq__ (an elementwise op) on leaf keys
        if deps.get(key, 0) == 0 and not any(k is key for k in ready):
            ready.append(key)
    prev = _state["grad"]
    _state["grad"] = bool(create_graph)
    try:
        while ready:
            key = ready.pop()
            slots = buffers.pop(key, None)
            if _is_leaf_key(key):
                _finish_leaf(key, slots, targets, captured, accumulate, create_graph,
                             stored_ids)
                continue
            node = key
            if slots is not None:
                slots = _node_hooks(node, slots, create_graph, stored_ids)
            if targets is not None:
                for i in range(node.n_out):
                    for j in targets.get((node, i), ()):
                        if slots is not None:
                            captured[j] = slots[i]
                run = id(node) in needed
            else:
                run = True
            res = None
            if run and slots is not None and any(s is not None for s in slots):
                res = node.apply(slots, Tensor)
            for k, e in enumerate(node.next):
                if e is None:
                    continue
                tgt, idx = e
                if res is not None:
                    r = res[k]
                    if callable(r):
                        r = r()
                    if r is not None:
                        r = _fit(r, node.metas[k])
                        _add(buffers, tgt, idx, r)
                deps[tgt] -= 1
                if deps[tgt] == 0:
                    ready.append(tgt)
            if not retain_graph and run:
                node.release()
    finally:
        _state["grad"] = prev
    if accumulate:
        # backward(inputs=[y]) with y not a leaf: torch fills y.grad too
        for t, j in non_leaves:
            if captured[j] is not None:
                _finish_leaf(t, [captured[j]], None, None, True, create_graph, stored_ids,
                             hooks=False)
    if inputs is not None and not accumulate:
        for i, c in enumerate(captured):
            if c is None and not allow_unused:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) appears to "
                                   f"not have been used in the graph. Set allow_unused=True if "
                                   f"this is the desired behavior.")
        return tuple(captured)
    return None


def _one_node_to_leaves(root, g, Tensor, retain_graph) -> bool:
    """The common training step, `loss.backward()` on the output of one node (a compiled
    function) whose inputs are all distinct leaves and that has no hooks or retained grads of
    its own (the leaves' hooks run as usual): run it and fill the leaves' .grad as the engine
    would, without the engine's bookkeeping. False: not that case (nothing done)."""
    e = _edge(root) if root.requires_grad else None
    node = e[0] if e is not None else None
    if node is None or not isinstance(node, Node) or node.pre_hooks or node.retains:
        return False
    leaves = [x[0] for x in node.next if x is not None]
    if any(isinstance(t, Node) for t in leaves) or len({id(t) for t in leaves}) != len(leaves):
        return False
    slots = [None] * node.n_out
    slots[e[1]] = g
    stored_ids = {id(g._data)}
    prev = _state["grad"]
    _state["grad"] = False
    try:
        # in the engine's order: every gradient computed (lazy ones read saved inputs that a
        # leaf's hook may modify), the node released, then the leaves finished last to first
        res = node.apply(slots, Tensor)
        done = []
        for k, x in enumerate(node.next):
            if x is None:
                continue
            r = res[k] if res is not None else None
            if callable(r):
                r = r()
            done.append((x[0], None if r is None else _fit(r, node.metas[k])))
        if not retain_graph:
            node.release()
        for t, r in reversed(done):
            if r is not None:
                _finish_leaf(t, [r], None, None, True, False, stored_ids)
    finally:
        _state["grad"] = prev
    return True


def _add(buffers, key, idx, g):
    slots = buffers.get(key)
    if slots is None:
        n = key.n_out if isinstance(key, Node) else 1
        slots = buffers[key] = [None] * n
    slots[idx] = g if slots[idx] is None else slots[idx] + g


def _fit(g, meta):
    shape, dtype = meta
    if g.shape != shape:
        g = g._sum_to(shape)
    if g.dtype is not dtype and dtype.is_floating_point:
        g = g.to(dtype)
    return g


def _node_hooks(node, slots, create_graph, taken):
    """Run a node's tensor hooks and fill retained .grad. `taken`: ids of gradient buffers
    already handed out (to a .grad, a hook, the caller); a pass-through vjp (add, expand) sends
    one buffer down several edges, and a .grad accumulated in place must not alias another."""
    if node.pre_hooks:
        for i, hooks in node.pre_hooks.items():
            for h in list(hooks):
                if slots[i] is not None:
                    taken.add(id(slots[i]._data))  # the hook may keep it
                    r = h(slots[i])
                    if r is not None:
                        slots[i] = _checked_hook_result(h, slots[i], r)
    if node.retains:
        for i, ref in node.retains.items():
            t = ref()
            if t is not None and slots[i] is not None:
                g = slots[i] if create_graph else slots[i].detach()
                if t.grad is None and not create_graph:
                    if id(g._data) in taken:
                        g = Tensor_from(g, g._data.copy())
                    taken.add(id(g._data))
                t.grad = g if t.grad is None else t.grad + g
    return slots


def _checked_hook_result(hook, g, r):
    """A tensor hook may replace a gradient only by one of its shape and dtype (torch)."""
    if tuple(r.shape) != tuple(g.shape):
        raise RuntimeError(f"hook '{getattr(hook, '__name__', hook)}' has changed the size of "
                           f"value (from {list(g.shape)} to {list(r.shape)})")
    if r.dtype is not g.dtype:
        raise RuntimeError(f"hook '{getattr(hook, '__name__', hook)}' has changed the type of "
                           f"value (from {g.dtype.name} to {r.dtype.name})")
    return r


def zero_grads(params, set_to_none: bool = True) -> None:
    """What Module.zero_grad and Optimizer.zero_grad do to their parameters' .grad."""
    for p in params:
        if set_to_none:
            p.grad = None    # unconditional: a compiled step need not guard on the old value
        elif p.grad is not None:
            with no_grad():
                p.grad.detach_().zero_()


def _shares_memory(d) -> bool:
    """Whether another object may see d's memory: d is a view of something that anything but
    d references (the compiled backend hands out arrays carved from private buffers)."""
    return d.base is not None and sys.getrefcount(d.base) > _ONLY_VIEW


def _only_view_count() -> int:
    """getrefcount of a base that only one view references (whether the call's argument is
    counted differs between Python versions)."""
    import numpy as np
    d = np.empty(4)[1:]
    return sys.getrefcount(d.base)


_ONLY_VIEW = _only_view_count()


def _finish_leaf(t, slots, targets, captured, accumulate, create_graph, stored_ids,
                 hooks=True):
    g = slots[0] if slots else None
    if g is None:
        return
    js = targets.get(t) if targets is not None else None
    if targets is not None and js is None:
        return                      # not differentiated: its hooks do not run (torch)
    for h in list(t._hooks or ()) if hooks else ():
        stored_ids.add(id(g._data))  # the hook may keep it
        r = h(g)
        if r is not None:
            g = _checked_hook_result(h, g, r)
    if g.is_cuda != t.is_cuda and t._data.ndim == 0:
        g = g.to(t.device)          # a CPU 0-d leaf used in a CUDA op: its grad on the CPU
    if js is not None and not accumulate:
        for j in js:
            captured[j] = g
        return
    if not accumulate:
        return
    if not create_graph:
        g = g.detach()
        d = g._data
        if t.grad is None:
            # keep the gradient unaliased: optimizers and users modify .grad in place
            if id(d) in stored_ids or _shares_memory(d) or not d.flags.writeable:
                d = d.copy()
            stored_ids.add(id(d))
            t.grad = Tensor_from(t, d)
        else:
            if t.grad.shape != g.shape:
                raise RuntimeError(f"the accumulated .grad has shape {tuple(t.grad.shape)} but "
                                   f"the new gradient has shape {tuple(g.shape)}")
            t.grad._data += d
            t.grad._version[0] += 1
    else:
        t.grad = g if t.grad is None else t.grad + g


def Tensor_from(like, data):
    return type(like)._make(data, False, None, None)


# --- public API: torch.autograd.grad / torch.autograd.backward ---


def _as_tuple(x) -> tuple:
    return (x,) if not isinstance(x, (list, tuple)) else tuple(x)


def _root_grads(Tensor, outputs, grad_outputs, what: str) -> list:
    """One gradient per output: the user's (checked against its shape) or ones for a scalar."""
    if grad_outputs is None:
        grad_outputs = (None,) * len(outputs)
    grad_outputs = _as_tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"{what}: got {len(grad_outputs)} gradients for {len(outputs)} "
                           f"outputs; pass one gradient per output (or None)")
    from .tensor import as_tensor
    grads = []
    for i, (t, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: outputs must be Tensors, got {type(t).__name__}")
        if g is None:
            if t.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs "
                                   f"(output {i} has shape {tuple(t.shape)}); pass its "
                                   f"gradient explicitly, or reduce it (e.g. .sum())")
            g = t.new_ones(t.shape).detach()
        else:
            g = as_tensor(g, dtype=t.dtype)
            if tuple(g.shape) != tuple(t.shape):
                raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                                   f"{tuple(g.shape)} and output[{i}] has a shape of "
                                   f"{tuple(t.shape)}.")
            if g.device != t.device:
                if g.ndim:      # torch moves a 0-d gradient, and refuses others
                    raise RuntimeError(f"invalid gradient at index {i} - expected device "
                                       f"{t.device} but got {g.device}")
                g = g.to(t.device)
        grads.append(g)
    return grads


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False,
         allow_unused=None, is_grads_batched: bool = False,
         materialize_grads: bool = False) -> tuple:
    """Gradients of `outputs` with respect to `inputs`, returned (not accumulated into .grad).

    As torch.autograd.grad: `grad_outputs` defaults to ones for scalar outputs, the graph is
    freed unless `retain_graph` (default: `create_graph`), an input the outputs do not depend on
    raises unless `allow_unused` (then its gradient is None, or zeros with `materialize_grads`).
    """
    from .tensor import Tensor
    if is_grads_batched:
        raise NotImplementedError("autograd.grad(is_grads_batched=True) is not supported")
    outputs, inputs = _as_tuple(outputs), _as_tuple(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"autograd.grad(): inputs must be Tensors, got "
                            f"{type(t).__name__} at position {i}")
    if allow_unused is None:
        allow_unused = materialize_grads
    if retain_graph is None:
        retain_graph = create_graph
    grads = _root_grads(Tensor, outputs, grad_outputs, "autograd.grad()")
    res = run_backward(Tensor, list(outputs), grads, retain_graph=retain_graph,
                       create_graph=create_graph, inputs=list(inputs), accumulate=False,
                       allow_unused=allow_unused)
    if materialize_grads:
        res = tuple(t.new_zeros(t.shape) if g is None else g for t, g in zip(inputs, res))
    return res


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate gradients of `tensors` into the leaves' `.grad` (torch.autograd.backward)."""
    from .tensor import Tensor
    tensors = _as_tuple(tensors)
    if retain_graph is None:
        retain_graph = create_graph
    grads = _root_grads(Tensor, tensors, grad_tensors, "autograd.backward()")
    if inputs is not None:
        inputs = list(_as_tuple(inputs))
    run_backward(Tensor, list(tensors), grads, retain_graph=retain_graph,
                 create_graph=create_graph, inputs=inputs, accumulate=True)
