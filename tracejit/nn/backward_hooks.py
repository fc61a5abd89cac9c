"""Module backward hooks (`register_full_backward_hook`, `register_full_backward_pre_hook`) with
PyTorch's semantics, built on autograd nodes of their own.

A call of a module with such hooks passes its tensor inputs, and then its outputs, through an
identity node (`_HookNode`, one slot per tensor, as torch's BackwardHookFunction): the output
node sees the gradients of the outputs first (pre-hooks may replace them), the input node then
sees those of the inputs, all at once, and calls the hooks with both; a hook may replace the
input gradients. The nodes' outputs alias the tensors they wrap (same data, same version
counter), so in-place writes stay visible; one through an input alias inside forward is refused,
as torch refuses it.
"""
from __future__ import annotations

import warnings

from .. import autograd as ag
from ..factories import zeros_like
from ..tensor import Tensor


class _HookOp:
    name = "backward_hook_function"
    saves = ()


class _HookNode(ag.Node):
    """Identity over `tensors`; `on_grads(slots)` turns the incoming gradients (None where
    none came) into the ones passed on, one per tensor."""

    def __init__(self, tensors: list, on_grads) -> None:
        self.op = _HookOp
        self.params = {}
        self.next = tuple(ag._edge(t) for t in tensors)
        self.metas = tuple((t._data.shape, t.dtype) for t in tensors)
        self.saved = (None,) * len(tensors)
        self.versions = (0,) * len(tensors)
        self.out = None
        self.freed = False
        self.pre_hooks = None
        self.retains = None
        self.view_v = None
        self.n_out = len(tensors)
        self.on_grads = on_grads

    def name(self) -> str:
        return "BackwardHookFunctionBackward"

    def apply(self, grads, Tensor):
        return self.on_grads(list(grads))


class BackwardHook:
    """The backward hooks of one module call (torch's torch.utils.hooks.BackwardHook)."""

    def __init__(self, module, hooks: list, pre_hooks: list) -> None:
        self.module, self.hooks, self.pre_hooks = module, hooks, pre_hooks
        self.grad_outputs = None
        self.n_inputs = self.n_outputs = 0
        self.input_index = self.output_index = None     # positions of the wrapped tensors
        self.inputs: list = []
        self.aliases: list = []                         # (alias, its version at creation)

    def _wrap(self, values: tuple, on_grads):
        """values with their tensors that require grad replaced by aliases that are outputs of
        one _HookNode (when grad mode is on and one does), and the positions of all their
        tensors: a tensor that does not require grad keeps a slot, with no gradient (torch
        marks it non-differentiable)."""
        index = [i for i, v in enumerate(values) if isinstance(v, Tensor)]
        tensors = [values[i] for i in index]
        if not (ag.is_grad_enabled() and any(t.requires_grad for t in tensors)):
            return values, None
        node = _HookNode(tensors, on_grads)
        out = list(values)
        for k, (i, t) in enumerate(zip(index, tensors)):
            if t.requires_grad:
                alias = Tensor._make(t._data, True, node, t._version)
                alias._out_idx = k
                out[i] = alias
        return tuple(out), index

    def setup_input_hook(self, args: tuple) -> tuple:
        self.n_inputs = len(args)
        args, self.input_index = self._wrap(args, self._input_grads)
        if self.input_index is not None:
            self.inputs = [args[i] for i in self.input_index]
            self.aliases = [(k, a, a._version[0]) for k, a in enumerate(self.inputs)
                            if isinstance(a.grad_fn, _HookNode)]
        return args

    def check_inplace(self) -> None:
        for k, a, v in self.aliases:
            if a._version[0] != v:
                raise RuntimeError(
                    f"Output {k} of BackwardHookFunction is a view and is being modified "
                    f"inplace: the module {type(self.module).__name__} has a full backward "
                    f"hook and its forward modifies its input in place (hooks cannot see that "
                    f"gradient); use an out-of-place op, or clone() the input first")

    def setup_output_hook(self, result):
        is_tuple = isinstance(result, tuple)
        if not is_tuple and not isinstance(result, Tensor):
            warnings.warn(f"For backward hooks to be called, module output should be a Tensor "
                          f"or a tuple of Tensors but received {type(result)}", stacklevel=4)
        values = result if is_tuple else (result,)
        self.n_outputs = len(values)
        values, self.output_index = self._wrap(values, self._output_grads)
        return values if is_tuple else values[0]

    def _pack(self, index, values, size) -> tuple:
        out = [None] * size
        for i, v in zip(index, values):
            out[i] = v
        return tuple(out)

    def _output_grads(self, grads: list) -> list:
        self.grad_outputs = self._pack(self.output_index, grads, self.n_outputs)
        for hook in self.pre_hooks:
            r = hook(self.module, self.grad_outputs)
            if r is None:
                continue
            if len(r) != len(self.grad_outputs):
                raise RuntimeError(f"Backward pre hook returned an invalid number of "
                                   f"grad_output, got {len(r)}, but expected "
                                   f"{len(self.grad_outputs)}")
            self.grad_outputs = tuple(r)
        passed = [self.grad_outputs[i] for i in self.output_index]
        if self.input_index is None:
            # no input requires grad: the hooks fire here, with no input gradients
            warnings.warn("Full backward hook is firing when gradients are computed with "
                          "respect to module outputs since no inputs require gradients.",
                          stacklevel=5)     # (the caller of backward())
            grad_inputs = (None,) * self.n_inputs
            for hook in self.hooks:
                r = hook(self.module, grad_inputs, self.grad_outputs)
                if r is not None and not (isinstance(r, tuple) and all(x is None for x in r)):
                    raise RuntimeError("Backward hook for Modules where no input requires "
                                       "gradient should always return None or None for all "
                                       "gradients.")
            self.grad_outputs = None
        return passed

    def _input_grads(self, grads: list) -> list:
        if self.grad_outputs is None:
            # the gradient reached the inputs without passing through the outputs (torch
            # skips the hooks then too)
            return grads
        # a tensor input that got no gradient counts as a zero one (torch materialises it)
        grads = [g if g is not None or not t.dtype.is_floating_point else zeros_like(t)
                 for g, t in zip(grads, self.inputs)]
        res = self._pack(self.input_index, grads, self.n_inputs)
        for hook in self.hooks:
            r = hook(self.module, res, self.grad_outputs)
            if r is None:
                continue
            if len(r) != len(res):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, "
                                   f"got {len(r)}, but expected {len(res)}")
            for i, t in zip(self.input_index, self.inputs):
                if r[i] is not None and tuple(r[i].shape) != tuple(t.shape):
                    raise RuntimeError(f"hook '{getattr(hook, '__name__', hook)}' has changed "
                                       f"the size of value (from {list(t.shape)} to "
                                       f"{list(r[i].shape)})")
            res = tuple(r)
        self.grad_outputs = None
        return [res[i] for i in self.input_index]
