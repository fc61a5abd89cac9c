"""Backend selection and the IR pass pipeline run before code generation."""
from __future__ import annotations

import logging
import os

log_fusion = logging.getLogger("tracejit.fusion")
_BACKENDS = ("llvm", "interpret", "cuda", "eager")


def default_backend() -> str:
    try:
        from ..codegen.llvm import backend  # noqa: F401
        return "llvm"
    except ImportError:
        return "interpret"


def optimize(g):
    """The IR passes (simplify, fold, cse, dce); dumps before/after when TRACEJIT_DEBUG_DIR."""
    try:
        from ..ir.passes import run_passes
    except ImportError:
        return g
    dump = None
    d = os.environ.get("TRACEJIT_DEBUG_DIR")
    if d:
        dump = _dumper(d, g.name)
    return run_passes(g, dump=dump)


def _dumper(directory: str, name: str):
    os.makedirs(directory, exist_ok=True)
    counter = [0]

    def dump(pass_name: str, before: str, after: str) -> None:
        counter[0] += 1
        base = os.path.join(directory, f"{name}.{counter[0]:02d}.{pass_name}")
        with open(base + ".before.ir", "w") as f:
            f.write(before + "\n")
        with open(base + ".after.ir", "w") as f:
            f.write(after + "\n")
    return dump


def compile_graph(g, backend: str | None, inplace: dict | None = None):
    """`inplace`: {output index: input index} of the function's in-place updates, which the
    LLVM and CUDA backends may write straight into the input's array (codegen/inplace.py; the
    others copy them back)."""
    backend = backend or default_backend()
    if backend == "interpret":
        from ..codegen.interpret import compile_graph as c
        return c(g)
    if backend == "llvm":
        try:
            from ..codegen.llvm.backend import compile_graph as c
        except ImportError as e:
            raise RuntimeError(f"backend 'llvm' is unavailable ({e}); install llvmlite or use "
                               f"backend='interpret'") from None
        return c(g, inplace)
    if backend == "cuda":
        try:
            from ..codegen.cuda.backend import compile_graph as c
        except ImportError as e:
            raise RuntimeError(f"backend 'cuda' is unavailable ({e}); it needs numba-cuda and an "
                               f"NVIDIA GPU (or NUMBA_ENABLE_CUDASIM=1)") from None
        return c(g, inplace)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(_BACKENDS)}")
