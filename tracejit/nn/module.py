"""`Module`: the base class of every layer and model, as PyTorch's `nn.Module`.

Assigning a `Parameter`, a `Module` or a registered buffer to an attribute registers it, so
`parameters()`, `state_dict()`, `train()/eval()` and `zero_grad()` find everything a model owns
by walking the tree of submodules. State dict keys are the dotted attribute paths PyTorch uses
(`fc1.weight`, `bn.running_mean`), and `load_state_dict` also accepts numpy arrays, so a PyTorch
state dict converted with `{k: v.numpy() for k, v in sd.items()}` loads unchanged.
"""
from __future__ import annotations

import copy
import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator

import numpy as np

from .. import autograd as ag
from ..ops import dtypes as D
from ..tensor import Tensor, _tracer
from .hooks import RemovableHandle, _RebindingHandle, call_with_hooks
from .parameter import Parameter

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])
_hook_ids = itertools.count()


def _type_name(v) -> str:
    return "Tensor" if isinstance(v, Tensor) else type(v).__name__


class Module:
    """Base class for all neural network modules; subclasses define `forward`."""

    training: bool

    def __init__(self, *args, **kwargs) -> None:
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments; "
                            f"Module.__init__() takes none (call super().__init__())")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        # ids of the hooks registered with_kwargs / always_call (torch's bookkeeping)
        d["_forward_hooks_with_kwargs"] = OrderedDict()
        d["_forward_hooks_always_called"] = OrderedDict()
        d["_forward_pre_hooks_with_kwargs"] = OrderedDict()
        d["_backward_hooks"] = OrderedDict()
        d["_backward_pre_hooks"] = OrderedDict()

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  f'"forward" function')

    def __call__(self, *args, **kwargs):
        if _tracer["active"]:
            _tracer["module"](self)  # compile guards on the training flag of modules it calls
        if not (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks or
                self._backward_pre_hooks):
            return self.forward(*args, **kwargs)
        return call_with_hooks(self, args, kwargs)

    # --- registration ---
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call (call "
                                 f"super().__init__() first in {type(self).__name__}.__init__)")

    def _check_name(self, name, kind: str, *taken) -> None:
        """`taken`: the other kinds' dicts, where the name may not be (a buffer registered
        over a parameter would overwrite its state_dict entry); attribute assignment drops
        the old one first."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name or name == "":
            raise KeyError(f'{kind} name can\'t contain "." and can\'t be empty string, got '
                           f'"{name}"')
        if hasattr(self, name) and name not in self._parameters and name not in self._buffers \
                and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        if any(name in t for t in taken):
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._check_init("parameters")
        self._check_name(name, "parameter", self._buffers, self._modules)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{_type_name(param)}' object to parameter '{name}' "
                            f"(tracejit.nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                             f"parameters must be created explicitly; wrap the value with "
                             f"nn.Parameter(t.detach())")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        self._check_init("buffers")
        self._check_name(name, "buffer", self._parameters, self._modules)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_type_name(tensor)}' object to buffer '{name}' "
                            f"(Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if not isinstance(module, Module) and module is not None:
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_init("child modules")
        self._check_name(name, "module")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if _tracer["active"] and isinstance(value, Tensor) and \
                value is not getattr(self, name, None):
            # a compiled function would rebind it only while tracing (`self.avg = ...`); an
            # in-place update (`self.avg.mul_(0.9)`, `+=`) is traced and replayed
            _tracer["break"](f"assigning a tensor to {type(self).__name__}.{name} inside a "
                             f"compiled function (update it in place instead)")
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            self._check_init("parameters")
            self._drop(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{_type_name(value)}' as parameter '{name}' "
                                f"(tracejit.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._check_init("child modules")
            self._drop(name, keep="_modules")
            self._modules[name] = value
        elif d.get("_modules") is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(f"cannot assign '{_type_name(value)}' as child module '{name}' "
                                f"(tracejit.nn.Module or None expected)")
            d["_modules"][name] = None
        elif d.get("_buffers") is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_type_name(value)}' as buffer '{name}' "
                                f"(Tensor or None expected)")
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _drop(self, name: str, keep: str) -> None:
        """Forget `name` everywhere but in the dict `keep`, where the new value replaces the
        old one in place: replacing `seq[0]` or `lin.weight` keeps its position (forward
        order, state dict order), as in torch."""
        self.__dict__.pop(name, None)
        for k in ("_parameters", "_buffers", "_modules"):
            if k != keep:
                self.__dict__[k].pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        d = self.__dict__
        for k in ("_parameters", "_buffers", "_modules"):
            if k in d and name in d[k]:
                if _tracer["active"]:
                    # read during a trace without a call (self.proj.weight): its entries are
                    # guarded too, so replacing that parameter retraces
                    _tracer["module"](self)
                return d[k][name]
        hint = ""
        if "_parameters" in d and not name.startswith("__") and \
                next(self.parameters(), None) is None:
            hint = f" ({type(self).__name__} has no parameters at all)"
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'{hint}")

    def __delattr__(self, name: str) -> None:
        for k in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(k, ()):
                del self.__dict__[k][name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        extra = itertools.chain(self._parameters, self._buffers, self._modules)
        return sorted(set(super().__dir__()) | set(extra))

    # --- traversal ---
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, prefix + ("." if prefix else "") + name,
                                           remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, attr: str, prefix: str, recurse: bool, remove_duplicate: bool):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, v in getattr(m, attr).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield mprefix + ("." if mprefix else "") + name, v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path ("" is self), with torch's AttributeErrors."""
        m = self
        for item in target.split(".") if target else ():
            if not hasattr(m, item):
                raise AttributeError(f"{m._get_name()} has no attribute `{item}`")
            m = getattr(m, item)
            if not isinstance(m, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return m

    def get_parameter(self, target: str) -> Parameter:
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if not hasattr(m, name):
            raise AttributeError(f"{m._get_name()} has no attribute `{name}`")
        p = getattr(m, name)
        if not isinstance(p, Parameter):
            raise AttributeError(f"`{name}` is not an nn.Parameter")
        return p

    def get_buffer(self, target: str) -> Tensor:
        mod, _, name = target.rpartition(".")
        m = self.get_submodule(mod)
        if not hasattr(m, name):
            raise AttributeError(f"{m._get_name()} has no attribute `{name}`")
        if name not in m._buffers:
            raise AttributeError(f"`{name}` is not a buffer")
        return m._buffers[name]

    # --- state ---
    def state_dict(self, destination=None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name (detached, sharing memory)."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values (Tensors or numpy arrays) into this module's parameters and buffers."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        with ag.no_grad():
            for key, dst in own.items():
                if key not in state_dict:
                    continue
                src = _as_value(state_dict[key])
                if src is None:
                    errors.append(f'While copying the parameter named "{key}", expected '
                                  f'tracejit.Tensor or a numpy array from checkpoint but '
                                  f'received {type(state_dict[key])}')
                    continue
                if tuple(src.shape) != tuple(dst.shape):
                    errors.append(f"size mismatch for {key}: copying a param with shape "
                                  f"{_size(src.shape)} from checkpoint, the shape in current "
                                  f"model is {_size(dst.shape)}.")
                    continue
                if assign:
                    self._assign(key, src)
                else:
                    dst.copy_(src)
        if strict:
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in unexpected) + ". ")
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: " +
                              ", ".join(f'"{k}"' for k in missing) + ". ")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" +
                               "\n\t".join(errors))
        return _IncompatibleKeys(missing, unexpected)

    def _assign(self, key: str, src: Tensor) -> None:
        mod, _, name = key.rpartition(".")
        m = self.get_submodule(mod)
        if name in m._parameters:
            old = m._parameters[name]
            m._parameters[name] = Parameter(src.detach(), old.requires_grad)
        else:
            m._buffers[name] = src.detach()

    # --- modes and gradients ---
    def train(self, mode: bool = True) -> Module:
        """Set the training flag here and, through each direct child's own `train`, below: a
        child that overrides `train` (a frozen BatchNorm that stays in eval) is honoured, as in
        PyTorch."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")  # noqa: TRY004 (torch)
        self.__dict__["training"] = mode    # (not __setattr__: no tensor, nothing to register)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        ag.zero_grads(self.parameters(), set_to_none)

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call `fn` on every submodule (children first) and on self, as `model.apply(init)`."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # --- dtype conversion (parameters keep their identity, as PyTorch's .to()) ---
    def _apply_data(self, fn: Callable[[Tensor], Tensor]) -> Module:
        for m in self.modules():
            for name, p in m._parameters.items():
                if p is not None:
                    p._data = fn(p)._data
                    if p.grad is not None:
                        p.grad = fn(p.grad)
            for name, b in m._buffers.items():
                if b is not None:
                    new = fn(b)
                    if new._data is not b._data:    # unchanged (cpu to cpu): the same tensor
                        m._buffers[name] = new
        return self

    def to(self, *args, dtype=None, device=None, tensor=None, **kwargs) -> Module:
        """`to(device, dtype)`, `to(dtype)` or `to(tensor)` (that tensor's dtype and device),
        as torch; integer and bool tensors are never cast."""
        for a in args:
            if isinstance(a, bool):
                continue                # non_blocking: nothing to wait for here
            if isinstance(a, Tensor):
                tensor = a
            elif isinstance(a, (D.DType, type)) or (isinstance(a, str) and a in D._BY_NAME):
                dtype = a
            else:
                device = a
        if tensor is not None:
            if dtype is not None or device is not None:
                raise TypeError("to() received an invalid combination of arguments: a tensor "
                                "with a dtype or a device (pass either)")
            dtype, device = tensor.dtype, tensor.device
        d = None if dtype is None else D.get_dtype(dtype)
        if d is not None and not d.is_floating_point:   # (checked before anything moves)
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired "
                            f"dtype={d}")
        if device is not None:
            from ..factories import _device_check
            _device_check(device)
            # parameters keep their identity; their data (and grads) move
            self._apply_data(lambda t: t.detach().to(device))
        if d is not None:
            self._apply_data(lambda t: t.detach().to(d) if t.dtype.is_floating_point else t)
        return self

    def float(self) -> Module:
        return self.to(D.float32)

    def double(self) -> Module:
        return self.to(D.float64)

    def half(self) -> Module:
        return self.to(D.float16)

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device=None) -> Module:
        return self.to("cuda" if device is None else device)

    # --- hooks ---
    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False,
                              always_call: bool = False) -> RemovableHandle:
        """`hook(module, args, output)` (with_kwargs: `hook(module, args, kwargs, output)`)
        runs after forward; a non-None result replaces the output. prepend: before the hooks
        already registered; always_call: also when forward (or a hook) raises."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        if with_kwargs:
            self._forward_hooks_with_kwargs[key] = True
        if always_call:
            self._forward_hooks_always_called[key] = True
        if prepend:
            self._forward_hooks.move_to_end(key, last=False)
        return RemovableHandle(self._forward_hooks, key, (self._forward_hooks_with_kwargs,
                                                          self._forward_hooks_always_called))

    def register_full_backward_hook(self, hook: Callable,
                                    prepend: bool = False) -> RemovableHandle:
        """`hook(module, grad_input, grad_output)` runs when the gradients of the module's
        positional tensor inputs are computed (None for a non-tensor argument); a non-None
        result (a tuple of the same length) replaces grad_input. When no input requires grad it
        runs with the output gradients and grad_input all None."""
        return self._add_backward_hook("_backward_hooks", hook, prepend)

    def register_full_backward_pre_hook(self, hook: Callable,
                                        prepend: bool = False) -> RemovableHandle:
        """`hook(module, grad_output)` runs when the gradients of the module's outputs are
        computed; a non-None result replaces grad_output."""
        return self._add_backward_hook("_backward_pre_hooks", hook, prepend)

    def _add_backward_hook(self, attr: str, hook: Callable, prepend: bool) -> RemovableHandle:
        # a new dict rather than an update of the old one: a compiled function guards the
        # identity of what Module.__call__ reads, so adding (or removing) a backward hook to a
        # module it has traced retraces it (and the call then runs eagerly, with the hook)
        key = next(_hook_ids)
        hooks = OrderedDict(self.__dict__[attr])
        hooks[key] = hook
        if prepend:
            hooks.move_to_end(key, last=False)
        self.__dict__[attr] = hooks
        return _RebindingHandle(self, attr, key)

    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """`hook(module, args)` runs before forward; a non-None result replaces the args (a
        non-tuple is wrapped into one). with_kwargs: `hook(module, args, kwargs)`, which may
        return a new `(args, kwargs)` pair."""
        key = next(_hook_ids)
        self._forward_pre_hooks[key] = hook
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs[key] = True
        if prepend:
            self._forward_pre_hooks.move_to_end(key, last=False)
        return RemovableHandle(self._forward_pre_hooks, key,
                               (self._forward_pre_hooks_with_kwargs,))

    # --- copying ---
    def __deepcopy__(self, memo: dict) -> Module:
        """The default deep copy, refused (RuntimeError, as torch) when the module holds a
        tensor with autograd history: copying it would copy its graph too. torch refuses in
        Tensor.__deepcopy__; here the module's own attributes and buffers are checked."""
        if any(_holds_non_leaf(v) for v in self.__dict__.values()):
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment. A module holds a "
                               "tensor computed with autograd: detach() it, or recompute it "
                               "after the copy.")
        # what copy.deepcopy does for an object without __deepcopy__ (a subclass's
        # __getstate__/__setstate__ are honoured)
        return copy._reconstruct(self, memo, *self.__reduce_ex__(4))

    # --- printing ---
    def extra_repr(self) -> str:
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            s = _indent(repr(m), 2)
            lines.append(f"({name}): {s}")
        main = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


def _indent(s: str, n: int) -> str:
    parts = s.split("\n")
    return parts[0] + "".join("\n" + " " * n + p for p in parts[1:])


def _size(shape) -> str:
    return f"tracejit.Size({list(shape)})"


def _as_value(v) -> Tensor | None:
    """A state dict value as a Tensor: a Tensor or a numpy array; None for anything else (a
    list or a Python number is refused, as torch refuses what is not Tensor-like)."""
    if isinstance(v, Tensor):
        return v
    if isinstance(v, (np.ndarray, np.generic)):
        return Tensor._make(np.asarray(v))
    return None


def _holds_non_leaf(v) -> bool:
    """Whether v, or a list, tuple, set or dict inside it, holds a tensor with autograd
    history (a submodule is checked when it is copied itself)."""
    if isinstance(v, Tensor):
        return v.grad_fn is not None
    if isinstance(v, dict):
        return any(_holds_non_leaf(x) for x in v.values())
    if isinstance(v, (list, tuple, set, frozenset)):
        return any(_holds_non_leaf(x) for x in v)
    return False
