"""`Optimizer`: parameter groups, per-parameter state, zero_grad and state_dict, as PyTorch's.

Subclasses implement `step()` with PyTorch's single-tensor (for-loop) update equations, run under
`no_grad` with in-place Tensor ops. `state_dict()` refers to parameters by their index in the
order of the groups, so it can be saved with `tj.save` and loaded into a freshly built optimizer.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import autograd as ag
from ..factories import tensor
from ..tensor import Tensor, _tracer


class _RequiredParameter:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class _ParamGroup(dict):
    """A parameter group. Inside tracejit.compile, reading its "lr" (in the optimizer or in the
    user's function) traces it as an input read from this dict on every call (Tracer.lift)."""
    __slots__ = ()

    def __getitem__(self, key):
        if key == "lr" and _tracer["active"]:
            _tracer["lift"](self, key)
        return dict.__getitem__(self, key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __setitem__(self, key, value) -> None:
        if _tracer["active"]:
            # a compiled function would make the change only while tracing
            _tracer["break"](f"param_group[{key!r}] assigned inside a compiled function")
        dict.__setitem__(self, key, value)


def implementation(foreach, fused, capturable: bool, differentiable: bool) -> None:
    """Check torch's implementation switches. foreach and fused pick one of torch's kernels
    (loops, multi-tensor, fused), which compute the same update: tracejit has one, so they
    change nothing here. They are still kept in param_groups, so state dicts round trip with
    torch's. capturable (CUDA graphs) and differentiable (autograd through step()) change what
    step() computes, which tracejit does not implement."""
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if differentiable:
        raise NotImplementedError("differentiable=True is not supported by tracejit's "
                                  "optimizers (step() runs under no_grad)")
    if capturable:
        raise NotImplementedError("capturable=True is not supported by tracejit's optimizers "
                                  "(there are no CUDA graphs to capture; tj.compile can trace "
                                  "a step without it)")


class Optimizer:
    """Base class: `Optimizer(params, defaults)`; params is an iterable of Tensors or of dicts
    (parameter groups with per-group options)."""

    # what torch's __setstate__ gives a loaded group that lacks the key (a checkpoint from an
    # older torch): a subclass's values, which are not always its defaults (AdamW sets
    # decoupled_weight_decay in _fill_group)
    _legacy_defaults: dict = {}

    def __init__(self, params: Iterable, defaults: dict) -> None:
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(f"params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        params = list(params)
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):
            # named parameters, as model.named_parameters() gives them (PyTorch >= 2.6)
            param_group = dict(param_group, param_names=[n for n, _ in params])
            params = [p for _, p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is "
                                f"{type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (optimize the leaf it was "
                                 "computed from, or use .detach().requires_grad_())")
        group = _ParamGroup(param_group, params=params)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            import warnings
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error", stacklevel=3)
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        ag.zero_grads((p for g in self.param_groups for p in g["params"]), set_to_none)

    def step(self, closure: Callable | None = None):
        raise NotImplementedError

    def _updates(self):
        """(group, param, gradient) for every parameter that has a gradient, the gradient
        negated for a group with maximize=True: the walk every step() makes."""
        tracing = _tracer["active"]
        if tracing:
            self._guard_trace()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if tracing and not self._state_ready(group, p):
                        # the buffers a first step creates would escape the trace: this call
                        # runs eagerly and the next one traces with them in place
                        _tracer["break"]("the optimizer creates its state on its first step",
                                         retry=True)
                    yield group, p, (-p.grad if group.get("maximize") else p.grad)

    def _state_ready(self, group: dict, p: Tensor) -> bool:
        """Whether p's state holds what step() reads (not created on this step)."""
        return bool(self.state.get(p))

    def _guard_trace(self) -> None:
        """Inside tracejit.compile: the compiled step reads the learning rate from its group
        on every call, holds the other hyperparameters as constants and the state tensors by
        reference, so it is valid while those stay as traced (a changed momentum, or
        load_state_dict's new state tensors, make the next call retrace)."""
        guard = _tracer["guard"]
        guard(lambda: self.state, self.state)
        guard(lambda: self.param_groups, self.param_groups)
        guard(lambda: len(self.param_groups), len(self.param_groups))
        for i, group in enumerate(self.param_groups):
            guard(lambda i=i: self.param_groups[i], group)
            guard(lambda g=group: len(dict.__getitem__(g, "params")), len(group["params"]))
            for k, v in group.items():
                # the learning rate is an input of the compiled step: a scheduler changing it
                # does not recompile; the others steer Python branches (momentum != 0)
                if not (k == "lr" and _tracer["lift"](group, k)):
                    guard(lambda g=group, k=k: g[k], v)
            for p in group["params"]:
                st = self.state.get(p)
                guard(lambda p=p: self.state.get(p), st)
                for k, v in (st or {}).items():
                    guard(lambda st=st, k=k: st.get(k), v)

    def _closure(self, closure):
        if closure is None:
            return None
        with ag.enable_grad():
            return closure()

    # --- state dict ---
    def state_dict(self) -> dict:
        """{'state': {index: {name: value}}, 'param_groups': [{..., 'params': [index, ...]}]}."""
        index: dict = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = copy.deepcopy(_plain(state_dict))
        groups, saved = self.param_groups, state_dict["param_groups"]
        if len(groups) != len(saved):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for g, s in zip(groups, saved):
            if len(g["params"]) != len(s["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't "
                                 "match the size of optimizer's group")
        by_index = {i: p for s, g in zip(saved, groups) for i, p in zip(s["params"], g["params"])}
        self.state = defaultdict(dict)
        for k, values in state_dict["state"].items():
            k = int(k)
            if k not in by_index:
                continue
            p = by_index[k]
            self.state[p] = {name: _cast_state(name, v, p) for name, v in values.items()}
        for g, s in zip(groups, saved):     # in place: compiled steps read these dicts
            params, names = g["params"], g.get("param_names")
            g.clear()
            g.update(s, params=params)
            if names is not None:
                g.setdefault("param_names", names)
            self._fill_group(g)

    def _fill_group(self, group: dict) -> None:
        """Give a loaded group the hyperparameters its checkpoint lacks (step() reads them all):
        torch's fallbacks, then this optimizer's defaults."""
        for name, value in self._legacy_defaults.items():
            group.setdefault(name, value)
        for name, value in self.defaults.items():
            if value is not required:
                group.setdefault(name, value)

    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        for group in self.param_groups:
            self._fill_group(group)

    def __repr__(self) -> str:
        s = type(self).__name__ + " ("
        for i, g in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for k in sorted(g):
                if k != "params":
                    s += f"\n    {k}: {g[k]}"
        return s + "\n)"


def _plain(sd):
    """Accept numpy arrays (a converted PyTorch state dict) wherever tensors are expected."""
    if isinstance(sd, dict):
        return {k: _plain(v) for k, v in sd.items()}
    if isinstance(sd, list):
        return [_plain(v) for v in sd]
    if isinstance(sd, np.ndarray):
        return Tensor._make(np.array(sd, copy=True))
    return sd


def _cast_state(name: str, value: Any, param: Tensor) -> Any:
    # as PyTorch: state follows the parameter's device, floating state its dtype, except the
    # step counter (a checkpoint from the CPU resumes a model on the GPU)
    if name == "step" and isinstance(value, (int, float)):
        # torch < 1.12 saved Adam's and RMSprop's step as a number; step() adds to a tensor
        return tensor(float(value))
    if isinstance(value, Tensor):
        value = value.detach()
        if name != "step":
            value = value.to(param.device)
            if value.dtype.is_floating_point and value.dtype is not param.dtype:
                value = value.to(param.dtype)
        return value.clone()
    return value
