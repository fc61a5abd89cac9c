"""The peer columns: the same workloads in torch (eager, torch.compile) and jax.jit.

Peers are optional: whichever is importable gets a column, a missing one gets one note line.
Each peer starts from the workload's numpy inputs (the same values tracejit gets), and its loss
and gradients are checked against tracejit eager before it is timed, so a peer's time is never
shown for a different computation. jax differentiates functionally; its W2 is the whole training
step under one jax.jit (as in WORKLOADS.md's reference table).
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from .workloads import LR, MOMENTUM, Workload

PEERS = ("torch", "torch.compile", "jax.jit")


def available(quick: bool = False) -> tuple[list[str], list[str]]:
    """(peers to run, note lines for the others)."""
    peers, notes = [], []
    if importlib.util.find_spec("torch") is None:
        notes.append("torch not installed: torch eager and torch.compile columns skipped")
    else:
        peers.append("torch")
        if quick:
            notes.append("torch.compile skipped in --quick (it compiles for seconds per "
                         "workload on 2 cores); run without --quick for it")
        else:
            peers.append("torch.compile")
    if importlib.util.find_spec("jax") is None:
        notes.append("jax not installed: jax.jit column skipped")
    else:
        peers.append("jax.jit")
    return peers, notes


def version(peer: str) -> str:
    mod = importlib.import_module(peer.split(".")[0])
    return getattr(mod, "__version__", "?")


class PeerCase:
    """step(): one timed step. result(): (names, arrays) as Case.collect gives for tracejit."""

    def __init__(self, step: Callable[[], Any], result: Callable[[], tuple], number: int = 1):
        self.step, self.result, self.number = step, result, number


def _names(n_out: int, n_grads: int, loss: bool) -> list[str]:
    first = ["loss"] if loss else [f"output {i}" for i in range(n_out)]
    return first + [f"grad {i}" for i in range(n_grads)]


def _layers(d: dict) -> int:
    return sum(1 for k in d if k[0] == "w" and k[1:].isdigit())


# --- torch ----------------------------------------------------------------------------------
def _torch(wl: Workload, compiled: bool) -> PeerCase:
    import torch
    import torch.nn.functional as F
    d = wl.data

    def T(a, grad=False):
        return torch.tensor(a).requires_grad_(grad)

    after = None
    if wl.id == "W1":
        args = [T(d[k], True) for k in "xwb"]
        params = args

        def fn(x, w, b):
            return F.gelu(x * w + b, approximate="tanh").sum()
    elif wl.id == "W2":
        nl = _layers(d)
        params = [T(d[f"{k}{i}"], True) for i in range(nl) for k in "wb"]
        args = [T(d["x"]), torch.tensor(d["t"])]
        opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM)

        def fn(x, t):
            for i in range(nl - 1):
                x = F.linear(x, params[2 * i], params[2 * i + 1]).relu()
            return F.cross_entropy(F.linear(x, params[-2], params[-1]), t)

        def after():
            opt.step()
            opt.zero_grad()
    elif wl.id == "W3":
        args = [T(d[k], True) for k in "xwb"]
        params = args

        def fn(x, w, b):
            return (F.layer_norm(x, (x.shape[-1],), w, b) * x).sum()
    elif wl.id == "W4":
        args = [T(d["logits"], True), torch.tensor(d["t"])]
        params = args[:1]
        fn = F.cross_entropy
    elif wl.id == "W5":
        args, params = [T(d["x"]), T(d["y"])], []

        def fn(x, y):
            return (x * y + 1.0).relu()
    elif wl.id == "W7":
        args = [T(d["xs"]), T(d["wx"], True), T(d["wh"], True), T(d["b"], True), T(d["h0"])]
        params = args[1:4]

        def fn(xs, wx, wh, b, h):
            for s in range(xs.shape[0]):
                h = torch.tanh(xs[s] @ wx + h @ wh + b)
            return h.sum()
    else:
        raise KeyError(wl.id)
    if compiled:
        fn = torch.compile(fn)
    backward = wl.case.backward

    def run():
        for p in params:
            p.grad = None
        out = fn(*args)
        if backward:
            out.backward()
        return out

    def step():
        run()
        if after is not None:
            after()

    def result():
        out = run()
        arrays = [out.detach().numpy().copy()] + [p.grad.numpy().copy() for p in params]
        return _names(1, len(params), backward), arrays

    return PeerCase(step, result, wl.case.number)


# --- jax ------------------------------------------------------------------------------------
def _jax(wl: Workload) -> PeerCase:
    import jax
    import jax.numpy as jnp
    d = wl.data
    number = wl.case.number
    if wl.id == "W5":
        f = jax.jit(lambda x, y: jax.nn.relu(x * y + 1.0))
        x, y = jnp.asarray(d["x"]), jnp.asarray(d["y"])

        def result():
            return _names(1, 0, False), [np.asarray(f(x, y).block_until_ready())]
        return PeerCase(lambda: f(x, y).block_until_ready(), result, number)

    def ce(logits, t):
        lp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(lp, t[:, None], axis=1))

    if wl.id == "W2":
        nl = _layers(d)
        params = [jnp.asarray(d[f"{k}{i}"]) for i in range(nl) for k in "wb"]
        x, t = jnp.asarray(d["x"]), jnp.asarray(d["t"].astype(np.int32))

        def loss(ps, x, t):
            for i in range(nl - 1):
                x = jax.nn.relu(x @ ps[2 * i].T + ps[2 * i + 1])
            return ce(x @ ps[-2].T + ps[-1], t)

        @jax.jit
        def train_step(ps, bufs, x, t):
            val, grads = jax.value_and_grad(loss)(ps, x, t)
            bufs = [MOMENTUM * b + g for b, g in zip(bufs, grads)]
            return [p - LR * b for p, b in zip(ps, bufs)], bufs, val, grads

        state = {"ps": params, "bufs": [jnp.zeros_like(p) for p in params]}

        def step():
            state["ps"], state["bufs"], val, _ = train_step(state["ps"], state["bufs"], x, t)
            val.block_until_ready()

        def result():  # the loss and gradients at the initial parameters
            _, _, val, grads = train_step(params, state["bufs"], x, t)
            return (_names(1, len(grads), True),
                    [np.asarray(val)] + [np.asarray(g) for g in grads])
        return PeerCase(step, result, number)

    if wl.id == "W1":
        args = [jnp.asarray(d[k]) for k in "xwb"]
        argnums = (0, 1, 2)

        def fn(x, w, b):
            return jnp.sum(jax.nn.gelu(x * w + b, approximate=True))
    elif wl.id == "W3":
        args = [jnp.asarray(d[k]) for k in "xwb"]
        argnums = (0, 1, 2)

        def fn(x, w, b):
            mean = jnp.mean(x, -1, keepdims=True)
            var = jnp.mean((x - mean) ** 2, -1, keepdims=True)
            return jnp.sum(((x - mean) * jax.lax.rsqrt(var + 1e-5) * w + b) * x)
    elif wl.id == "W4":
        args = [jnp.asarray(d["logits"]), jnp.asarray(d["t"].astype(np.int32))]
        argnums = (0,)
        fn = ce
    elif wl.id == "W7":
        args = [jnp.asarray(d[k]) for k in ("xs", "wx", "wh", "b", "h0")]
        argnums = (1, 2, 3)

        def fn(xs, wx, wh, b, h):
            for s in range(xs.shape[0]):
                h = jnp.tanh(xs[s] @ wx + h @ wh + b)
            return jnp.sum(h)
    else:
        raise KeyError(wl.id)
    g = jax.jit(jax.value_and_grad(fn, argnums=argnums))

    def result():
        val, grads = jax.block_until_ready(g(*args))
        return (_names(1, len(grads), True),
                [np.asarray(val)] + [np.asarray(x) for x in grads])
    return PeerCase(lambda: jax.block_until_ready(g(*args)), result, number)


def build(peer: str, wl: Workload) -> PeerCase:
    """The PeerCase for one peer column and one workload (nothing runs yet)."""
    if peer == "torch":
        return _torch(wl, compiled=False)
    if peer == "torch.compile":
        return _torch(wl, compiled=True)
    if peer == "jax.jit":
        return _jax(wl)
    raise ValueError(f"unknown peer {peer!r}; peers are {PEERS}")
