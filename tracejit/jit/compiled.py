"""`tracejit.compile`: the cache, guards, tracing, autodiff, partition and the call path.

A call flattens its arguments into tensors/floats (dynamic) and a key (structure, per tensor
shape/dtype/requires_grad, static values, grad mode). A cache miss traces the function into a
graph, differentiates it when an input requires grad, partitions forward/backward, runs the IR
passes and hands both graphs to the backend. A graph break makes that key run eagerly (default)
or raises (fullgraph=True). After 8 compiles of one function it warns once and runs eagerly.
A key keeps one trace per outcome of the guards recorded while tracing (guards.py), which
include the Python values the function read by name: globals, closure variables, module and
object attributes (reads.py); a changed one retraces. When the function calls backward()
itself (a whole training step), the backward is part of the one graph, the results have no
backward of their own, and the .grad assignments the trace made are
replayed after every call, like the in-place updates of inputs.
"""
from __future__ import annotations

import logging
import os
import time
import warnings

import numpy as np

from .. import autograd as ag
from .. import cuda as _cuda
from ..ir.graph import TensorType
from ..ir.partition import partition
from ..ops import dtypes as D
from ..tensor import Tensor, _ndarray, _on_device, _tracer
from . import backends
from .aliases import copy_array, replay_views, views_of_input
from .bridge import CompiledNode
from .differentiate import differentiate
from .guards import (closed_over, compile_check, failed_guard, guard_text, needs_eager,
                     traced_now)
from .structure import _flatten, _rebuild, _spec, _unspec, key_difference
from .trace import GraphBreak, Tracer

log_graph = logging.getLogger("tracejit.graph")
log_guards = logging.getLogger("tracejit.guards")
log_recompiles = logging.getLogger("tracejit.recompiles")
log_partition = logging.getLogger("tracejit.partition")

RECOMPILE_LIMIT = 8
_disabled = {"on": os.environ.get("TRACEJIT_DISABLE", "") not in ("", "0")}


def disable(flag: bool = True) -> None:
    """Run every compiled function eagerly (same as TRACEJIT_DISABLE=1)."""
    _disabled["on"] = bool(flag)


def _writeable(a) -> bool:
    return bool(a.flags.writeable) if type(a) is _ndarray else getattr(a, "writeable", True)


class _TraceError(Exception):
    """The traced function raised `error` (not a graph break)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Entry:
    """One compiled specialisation of a function."""
    backend = None
    saved_written = frozenset()   # saved inputs the function writes in place (copied first)
    to_host = False       # backend="cuda" called with CPU tensors: results come back to the host
    eager = False
    retry = False         # a graph break that the next call retraces (see GraphBreak)
    trace_error = None    # the exception the trace raised (see CompiledFunction._eager)
    alternatives = ()     # other traces of the same key, for other guard outcomes
    saved_error = None    # eager's error for a value modified after an op saved it
    bwd = None
    reason = None

    def __init__(self) -> None:
        self.stats: dict = {}


class CompiledFunction:
    def __init__(self, fn, backend: str | None = None, fullgraph: bool = False,
                 name: str | None = None, modules=()) -> None:
        self.fn = fn
        self.__wrapped__ = fn   # as functools.wraps: a trace calling this one guards fn's reads
        self._modules = list(modules)  # their .training flags are part of the key
        self.backend = backend
        self.fullgraph = fullgraph
        self.name = name or getattr(fn, "__name__", "f")
        self.cache: dict = {}
        self.keys: list = []
        self.compiles = 0
        self.last_stats: dict = {}
        self._warned_break: set = set()
        self._over_limit = False
        try:
            import inspect
            self._argnames = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            self._argnames = []

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        import functools
        return functools.partial(self.__call__, obj)

    def __call__(self, *args, **kwargs):
        if _disabled["on"] or self.backend == "eager" or _tracer["active"]:
            return self.fn(*args, **kwargs)  # nested compiled functions inline into the trace
        key, leaves = self.key(args, kwargs)
        entry = self.cache.get(key)
        if entry is None:
            entry = self._miss(key, args, kwargs, leaves)
            imp = None if entry.eager else traced_now(entry)
        elif entry.eager:
            return self._eager(key, entry, args, kwargs)
        else:
            imp = entry.check() if entry.guarded else entry.implicit    # closed_over(entry)
            if imp is None:
                # a closed-over tensor changed (a parameter was frozen, a gradient appeared or
                # went away) or a Python value the trace read (a global, a module attribute):
                # another trace of this key, or a new one
                entry, imp = self._other(key, entry, args, kwargs, leaves)
        if imp is None:
            return self._eager(key, entry, args, kwargs)
        if entry.side_effects and needs_eager(entry, leaves, imp):
            return self.fn(*args, **kwargs)
        out = self._run(entry, leaves, imp)
        if entry.debug_nans:
            out = self._check_nans(entry, out, args, kwargs, leaves, imp)
        return out

    def _other(self, key, entry, args, kwargs, leaves) -> tuple:
        """(entry, closed-over tensors) of a trace of `key` whose guards pass: one kept from
        before (gradient accumulation alternates .grad None and present), else a new trace;
        the others stay as its alternatives."""
        for alt in entry.alternatives:
            imp = closed_over(alt)
            if imp is not None:
                alt.alternatives = [entry] + [a for a in entry.alternatives if a is not alt]
                entry.alternatives = ()
                self.cache[key] = alt
                return alt, imp
        new = self._miss(key, args, kwargs, leaves, failed_guard(entry))
        if new.eager:
            if self._over_limit:
                self.cache[key] = new      # no more traces: no need to look through the others
            return new, None
        new.alternatives = [entry, *entry.alternatives]
        entry.alternatives = ()
        return new, traced_now(new)

    def key(self, args: tuple, kwargs: dict) -> tuple:
        """(cache key, dynamic leaves) of a call: grad mode, argument structure and tensor
        metadata, static values, and the training flags of the modules this function calls."""
        leaves: list = []
        key: list = [ag._state["grad"]]
        _flatten(args, leaves, key)
        if kwargs:
            _flatten(kwargs, leaves, key)
        if self._modules:
            key.append(tuple([m.training for m in self._modules]))
        return tuple(key), leaves

    # --- compile ---
    def _miss(self, key, args, kwargs, leaves, why: str | None = None) -> Entry:
        """Trace and compile this call (`why`: the guard of the key's trace that failed)."""
        if self._over_limit:
            e = Entry()
            e.eager = True
            return e
        if self.compiles >= RECOMPILE_LIMIT:
            self._over_limit = True
            warnings.warn(f"tracejit.compile: {self.name} was recompiled {RECOMPILE_LIMIT} times "
                          f"(last change: {why or self._diff(key)}); running it eagerly from "
                          f"now on. Make shapes/dtypes/static arguments, and the Python values "
                          f"it reads (globals, attributes), stable to benefit from "
                          f"compilation.", RuntimeWarning, stacklevel=3 if why is None else 4)
            e = Entry()
            e.eager = True
            return e
        if self.keys:
            log_recompiles.debug("recompiling %s: %s", self.name, why or self._diff(key))
        n_mod = len(self._modules)
        entry = self._compile(args, kwargs, leaves)
        if entry.retry:
            return entry                  # not cached: the next call traces again
        if len(self._modules) != n_mod:  # the trace met new modules: key on their flags too
            key = key[:len(key) - (1 if n_mod else 0)] + (
                tuple([m.training for m in self._modules]),)
        self.compiles += 1
        self.cache[key] = entry
        self.keys.append(key)
        return entry

    def _diff(self, key) -> str:
        return key_difference(self.keys, key, self._argnames)

    def _compile(self, args, kwargs, leaves) -> Entry:
        entry = Entry()
        # read once per compile: an environment lookup per call would cost a microsecond
        entry.debug_nans = os.environ.get("TRACEJIT_DEBUG_NANS", "") not in ("", "0")
        t0 = time.perf_counter()
        tr = Tracer(self.name)
        names = self._argnames
        # the Python values the function reads by name, as they are before it runs (reads.py)
        tr.reads.function(self.fn)
        tr.reads.arguments(self.fn, (*args, *kwargs.values()))
        try:
            with tr:
                tr.arg_nonleaf = {i for i, x in enumerate(leaves)
                                  if isinstance(x, Tensor) and x.grad_fn is not None}
                tr.arg_ids = {id(x) for x in leaves if isinstance(x, Tensor)}
                owner = getattr(self.fn, "__self__", None)     # tj.compile(module)
                if "_parameters" in getattr(owner, "__dict__", ()):
                    tr.module(owner)
                sym = []
                for i, x in enumerate(leaves):
                    nm = names[i] if i < len(names) else f"a{i}"
                    if isinstance(x, Tensor):
                        sym.append(tr.input(x, TensorType(x.shape, x.dtype), nm))
                    else:
                        sym.append(tr.input(None, TensorType((), D.float64), nm, weak=True))
                it = iter(sym)
                sargs = _rebuild(args, it)
                skw = _rebuild(kwargs, it)
                try:
                    out = self.fn(*sargs, **skw)
                except GraphBreak:
                    raise
                except Exception as exc:  # noqa: BLE001 - the function's own error: eager decides
                    if self.fullgraph:
                        raise
                    raise _TraceError(exc) from exc
                entry.t_trace = time.perf_counter() - t0
                self._build(entry, tr, leaves, sym, out)
            for m in tr.modules:
                if not any(x is m for x in self._modules):
                    self._modules.append(m)
        except GraphBreak as gb:
            tr.restore_mutated()
            if gb.retry:
                log_recompiles.debug("%s runs eagerly this call: %s at %s", self.name,
                                     gb.reason, gb.loc)
                entry.eager = entry.retry = True
                return entry
            if self.fullgraph:
                raise RuntimeError(f"tracejit.compile(fullgraph=True): graph break in "
                                   f"{self.name}: {gb.reason} at {gb.loc}. Remove the "
                                   f"data-dependent Python control flow / value access, or "
                                   f"compile without fullgraph to fall back to eager.") from None
            if gb.loc not in self._warned_break:
                self._warned_break.add(gb.loc)
                warnings.warn(f"tracejit.compile: graph break in {self.name}: {gb.reason} at "
                              f"{gb.loc}; this call signature runs eagerly.", RuntimeWarning,
                              stacklevel=4)
            entry.eager = True
            entry.reason = (gb.reason, gb.loc)
            return entry
        except _TraceError as te:
            tr.restore_mutated()
            entry.eager = entry.retry = True       # see _eager
            entry.trace_error = te.error
            return entry
        except BaseException:
            tr.restore_mutated()
            raise
        tr.restore_mutated()
        return entry

    def _eager(self, key, entry, args, kwargs):
        """Run this call eagerly. After the trace raised, eager decides: it raises the same
        error after the same side effects (an optimizer step, BatchNorm statistics), or it runs,
        and the trace was at fault: then the key runs eagerly from now on, with a warning."""
        out = self.fn(*args, **kwargs)
        if entry.trace_error is not None:
            warnings.warn(f"tracejit.compile: tracing {self.name} raised "
                          f"{type(entry.trace_error).__name__}: {entry.trace_error}, where eager "
                          f"does not; this call signature runs eagerly (please report it)",
                          RuntimeWarning, stacklevel=3)
            e = Entry()
            e.eager = True
            self.cache[key] = e
        return out

    def _build(self, entry, tr: Tracer, leaves, sym, out) -> None:
        g = tr.graph
        out_leaves: list = []
        entry.out_spec = _spec(out, out_leaves)
        user_nodes = [tr.node_of(t) for t in out_leaves]
        # results that are an argument or a closed-over tensor itself (`x.add_(1); return x`):
        # eager returns that very object, so the call does too
        entry.same_as_input = {}
        for k, t in enumerate(out_leaves):
            pos = next((i for i, s in enumerate(sym) if s is t), None)
            if pos is not None:
                entry.same_as_input[k] = ("arg", pos)
            elif any(t is c for c in tr.implicit):
                entry.same_as_input[k] = ("imp", next(j for j, c in enumerate(tr.implicit)
                                                     if c is t))
        entry.views_of_input = views_of_input(g, user_nodes, sym, tr.implicit,
                                               entry.same_as_input)
        # mutations: explicit inputs and closed-over tensors modified in place
        entry.mutations = []
        mut_nodes = []
        for t, orig in tr.mutations.values():
            if type(orig) is _ndarray or _on_device(orig):
                pos = next((i for i, c in enumerate(tr.implicit) if c is t), None)
                if pos is None:
                    continue  # a tensor made inside the function (tj.zeros(...))
                target = ("implicit", pos)
            else:
                pos = next((i for i, s in enumerate(sym) if s is t), None)
                if pos is None:
                    continue  # a temporary made inside the function
                target = ("arg", pos)
            entry.mutations.append(target)
            mut_nodes.append(t._data)
        primals = list(g.inputs)
        entry.implicit = list(tr.implicit)
        entry.implicit_src = list(tr.implicit_src)
        entry.grad_guards = list(tr.grad_reads.values())
        entry.value_guards = list(tr.value_guards)
        entry.reads = list(tr.reads.dicts.values())
        entry.cell_reads = list(tr.reads.cells.values())
        entry.lifted = bool(tr.lifted)
        # (a closed-over tensor written in place holds a traced value until restore_mutated)
        datas = [tr.mutations[id(t)][1] if id(t) in tr.mutations else t._data
                 for t in tr.implicit]
        entry.implicit_guard = [(t.shape, t.dtype, t.requires_grad, type(d))
                                for t, d in zip(tr.implicit, datas)]
        # .grad assignments (backward() and zero_grad() inside): replayed after each call
        entry.grad_sets, grad_nodes = [], []
        for owner, val in tr.grad_effects():
            pos = next((i for i, s in enumerate(sym) if s is owner), None)
            target = ("arg", pos) if pos is not None else ("obj", owner)
            if val is None:
                entry.grad_sets.append((target, None))
            else:
                entry.grad_sets.append((target, len(user_nodes) + len(mut_nodes) +
                                        len(grad_nodes)))
                grad_nodes.append(tr.node_of(val))
        entry.arg_grads = sorted(set(tr.arg_grads))
        entry.backward_leaves = list(tr.backward_leaves)
        entry.side_effects = bool(entry.mutations or entry.grad_sets)
        entry.guarded = bool(entry.implicit or entry.grad_guards or entry.value_guards or
                             entry.reads or entry.cell_reads)
        entry.check = compile_check(entry, self.name)
        if tr.backwarded and any(n.meta.get("rg") and id(n) not in tr.backwarded
                                 for n in user_nodes):
            tr.graph_break("a compiled function that calls backward() returns another tensor "
                           "that requires grad (return it detached, or call backward outside)")
        fwd_outputs = user_nodes + mut_nodes + grad_nodes
        entry.n_user = len(user_nodes)
        rg_inputs = [i for i, n in enumerate(primals) if n.meta.get("rg")]
        diff_out = [i for i, n in enumerate(user_nodes) if i not in entry.same_as_input and
                    i not in entry.views_of_input and n.meta.get("rg") and
                    n.type.dtype.is_floating_point]
        entry.diff_out = diff_out
        entry.rg_inputs = rg_inputs
        t1 = time.perf_counter()
        # after a backward() inside, the results are returned without a backward of their own
        # (eager would refuse a second backward through the freed graph anyway)
        if ag._state["grad"] and rg_inputs and diff_out and not tr.backwarded:
            # raised at backward, as eager raises it there
            entry.saved_error = tr.modified_saved([user_nodes[i] for i in diff_out])
            with ag.no_grad():
                tangents, grads = differentiate(tr, user_nodes, diff_out, primals, rg_inputs)
            entry.tangent_types = [(t.shape, t.dtype) for t in tangents]
            entry.grad_present = [gr is not None for gr in grads]
            mutated = {id(tr._implicit_node.get(id(t)) if type(orig) is _ndarray or
                          _on_device(orig) else orig) for t, orig in tr.mutations.values()}
            p = partition(g, primals, tangents, fwd_outputs, grads, mutated)
            entry.saved = p.saved
            entry.saved_bytes = p.saved_bytes()
            # inputs the backward reads that the function itself writes in place: the backward
            # needs their values from before the call (eager's in-place ops save those), so a
            # call copies them first
            written = {pos if kind == "arg" else len(leaves) + pos
                       for kind, pos in entry.mutations}
            entry.saved_written = {j for kind, j in p.saved if kind == "input" and j in written}
            fwd_graph, bwd_graph = p.fwd, p.bwd
        else:
            g.outputs = list(fwd_outputs)
            fwd_graph, bwd_graph = g, None
            entry.saved, entry.saved_bytes = [], 0
        entry.t_autodiff = time.perf_counter() - t1
        t2 = time.perf_counter()
        fwd_graph = backends.optimize(fwd_graph)
        if bwd_graph is not None:
            bwd_graph = backends.optimize(bwd_graph)
        entry.t_passes = time.perf_counter() - t2
        log_graph.debug("forward graph of %s:\n%s", self.name, fwd_graph)
        if bwd_graph is not None:
            log_graph.debug("backward graph of %s:\n%s", self.name, bwd_graph)
            log_partition.debug("%s saves %d values (%d bytes) for backward", self.name,
                                len(entry.saved), entry.saved_bytes)
        t3 = time.perf_counter()
        entry.fwd_graph, entry.bwd_graph = fwd_graph, bwd_graph
        entry.backend, entry.to_host = _cuda.select_backend(self.backend, [
            tr.mutations[id(x)][1] if id(x) in tr.mutations else x._data
            for x in leaves if isinstance(x, Tensor)] + datas)
        # the forward's outputs n_user.. are the new values of the mutated inputs
        inplace = {entry.n_user + m: i if kind == "arg" else len(leaves) + i
                   for m, (kind, i) in enumerate(entry.mutations)}
        entry.fwd = backends.compile_graph(fwd_graph, entry.backend, inplace)
        entry.bwd = backends.compile_graph(bwd_graph, entry.backend) if bwd_graph else None
        entry.t_codegen = time.perf_counter() - t3
        entry.stats = {"kernels_forward": len(getattr(entry.fwd, "kernels", ())),
                       "kernels_backward": len(getattr(entry.bwd, "kernels", ()))
                       if entry.bwd else 0,
                       "compile_s": entry.t_trace + entry.t_autodiff + entry.t_passes +
                       entry.t_codegen}
        log_guards.debug("guards for %s: %s", self.name, guard_text(self, leaves, entry))

    # --- run ---
    def _run(self, entry: Entry, leaves, imp: list):
        arrays = []
        for x in leaves:
            arrays.append(x._data if type(x) is not float else np.float64(x).reshape(()))
        for t in imp:
            arrays.append(t._data)
        need = entry.bwd is not None and ag._state["grad"]
        before = {j: copy_array(arrays[j]) for j in entry.saved_written} if need and \
            entry.saved_written else None
        outs = entry.fwd(arrays)
        self.last_stats = entry.stats
        n = entry.n_user
        results = [Tensor._make(a if not entry.to_host else a.copy_to_host())
                   for a in outs[:n]]
        if need:
            prim = leaves + imp
            saved, saved_inputs = [], []
            for kind, j in entry.saved:
                if before is not None and j in before and kind == "input":
                    saved.append(before[j])         # a copy: no version to check
                elif kind == "input":
                    saved.append(arrays[j])
                    if isinstance(prim[j], Tensor):
                        saved_inputs.append(prim[j])
                else:
                    saved.append(outs[j])
            node = CompiledNode(entry, saved, saved_inputs, [prim[i] for i in entry.rg_inputs])
            for k, i in enumerate(entry.diff_out):
                r = results[i]
                r.requires_grad = True
                r.grad_fn = node
                r._out_idx = k
        if entry.side_effects:
            self._write_back(entry, leaves, imp, outs)
        for k, (kind, i) in entry.same_as_input.items():
            results[k] = leaves[i] if kind == "arg" else imp[i]
        if entry.views_of_input:
            replay_views(entry.views_of_input, leaves, imp, results)
        return _unspec(entry.out_spec, iter(results))

    def _write_back(self, entry, leaves, imp, outs) -> None:
        # written back after the node took the versions of the inputs it saved: a backward
        # that reads an input the function itself modified raises, as in eager
        n = entry.n_user
        targets = [leaves[i] if kind == "arg" else imp[i] for kind, i in entry.mutations]
        if not all(_writeable(t._data) for t in targets):      # before any write, as eager
            raise RuntimeError("unsupported operation: more than one element of the written-to "
                               "tensor refers to a single memory location (an expanded "
                               "tensor); call .clone() before writing to it")
        for t, new in zip(targets, outs[n:n + len(entry.mutations)]):
            if new is t._data:
                pass          # the backend wrote it in place
            elif type(t._data) is _ndarray:
                np.copyto(t._data, new if type(new) is _ndarray else new.copy_to_host())
            else:
                t._data.copy_from(new)
            t._version[0] += 1
        for (kind, x), pos in entry.grad_sets:
            t = leaves[x] if kind == "arg" else x
            t._grad = None if pos is None else Tensor._make(
                outs[pos] if not entry.to_host else outs[pos].copy_to_host())

    def _check_nans(self, entry, out, args, kwargs, leaves, imp):
        """TRACEJIT_DEBUG_NANS: a NaN/inf that eager does not produce is reported by op and
        file:line, and the eager result is returned instead."""
        got: list = []
        _spec(out, got)
        if all(np.all(np.isfinite(t._data)) for t in got if t.dtype.is_floating_point):
            return out
        with ag.no_grad():
            ref = self.fn(*args, **kwargs)
        want: list = []
        _spec(ref, want)
        eager_bad = any(not np.all(np.isfinite(t._data)) for t in want
                        if t.dtype.is_floating_point)
        arrays = [x._data if type(x) is not float else np.float64(x).reshape(())
                  for x in leaves] + [t._data for t in imp]
        from .explain import first_bad_node
        where = first_bad_node(entry.fwd_graph, arrays)
        if eager_bad:
            warnings.warn(f"TRACEJIT_DEBUG_NANS: {self.name} produces NaN/inf (eager too); "
                          f"first produced by {where}", RuntimeWarning, stacklevel=3)
            return out
        where = where or ("none in the reference interpreter: the backend's kernels differ "
                          "from eager, please report it")
        warnings.warn(f"TRACEJIT_DEBUG_NANS: compiled {self.name} produced NaN/inf that eager "
                      f"does not; first op: {where}; returning the eager result",
                      RuntimeWarning, stacklevel=3)
        return self.fn(*args, **kwargs)
