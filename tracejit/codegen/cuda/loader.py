"""Generated source -> numba.cuda kernel, cached in memory (by source text) and on disk.

On a GPU each kernel's source is written, with the `PRELUDE` that binds the names generated
code uses, as a module `k_<sha256>.py` under `<cache dir>/cuda/` (`TRACEJIT_CACHE_DIR`, else
`$XDG_CACHE_HOME/tracejit` or `~/.cache/tracejit`), imported, and jitted with numba's
`cache=True`: numba keeps the compiled code next to the file (keyed by the source file, the
signature and the GPU), so a new process skips NVVM. The key hashes the source and the numba and
tracejit versions. A cache directory that cannot be used (or belongs to another user) falls back
to in-memory compilation with one warning. In Numba's CUDA simulator the same source is exec'd
with numpy's ufuncs bound to the math names (the simulator runs kernels as Python).
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import pathlib
import sys
import tempfile
import threading

import numpy as np
from numba import cuda

from .array import SIM

logger = logging.getLogger("tracejit.code")
FORMAT_VERSION = 1
_lock = threading.Lock()
_memory: dict = {}
_warned: set = set()
stats = {"compiles": 0, "memory_hits": 0, "disk_modules": 0}

PRELUDE = '''\
import math
import numpy as np
from numba import cuda
f4, f8, i4, i8, b1 = np.float32, np.float64, np.int32, np.int64, np.bool_
u8 = np.uint64
inf, nan = math.inf, math.nan
m_sqrt, m_exp, m_log, m_log1p, m_expm1 = math.sqrt, math.exp, math.log, math.log1p, math.expm1
m_tanh, m_sin, m_cos, m_erf, m_pow = math.tanh, math.sin, math.cos, math.erf, math.pow
m_floor, m_ceil, m_trunc = math.floor, math.ceil, math.trunc
m_rint4, m_rint8 = cuda.libdevice.rintf, cuda.libdevice.rint
'''


def _sim_namespace() -> dict:
    # the simulator runs kernels as Python: numpy's ufuncs keep float32 and give inf/nan where
    # Python's math raises; the module name lets tensor.py's warning filter silence numpy's
    # "divide by zero encountered" (CUDA is silent)
    ns = {"__name__": "tracejit.codegen.cuda._generated", "math": math, "np": np,
          "cuda": cuda, "f4": np.float32, "f8": np.float64, "i4": np.int32, "i8": np.int64,
          "u8": np.uint64, "b1": np.bool_, "inf": math.inf, "nan": math.nan}
    for name in ("sqrt", "exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "floor", "ceil",
                 "trunc"):
        ns["m_" + name] = getattr(np, name)
    ns["m_pow"] = np.power
    ns["m_rint4"] = ns["m_rint8"] = np.rint
    ns["m_erf"] = lambda x: math.erf(float(x))
    return ns


def cache_dir() -> pathlib.Path:
    env = os.environ.get("TRACEJIT_CACHE_DIR")
    if env:
        return pathlib.Path(env) / "cuda"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache") / "tracejit" / "cuda"


def load(source: str, name: str):
    """The numba.cuda kernel `name` defined by `source` (cached)."""
    with _lock:
        k = _memory.get((source, name))
        if k is not None:
            stats["memory_hits"] += 1
            return k
        stats["compiles"] += 1
        logger.debug("cuda kernel %s:\n%s", name, source)
        k = _sim_kernel(source, name) if SIM else _gpu_kernel(source, name)
        _memory[(source, name)] = k
        return k


def _sim_kernel(source: str, name: str):
    ns = _sim_namespace()
    exec(compile(source, f"<tracejit cuda {name}>", "exec"), ns)  # noqa: S102  (our own)
    return cuda.jit(ns[name])


def _gpu_kernel(source: str, name: str):
    text = PRELUDE + "\n\n" + source + "\n"
    mod = _disk_module(text)
    if mod is not None:
        return cuda.jit(cache=True)(getattr(mod, name))
    ns: dict = {"__name__": "tracejit.codegen.cuda._generated"}
    exec(compile(text, f"<tracejit cuda {name}>", "exec"), ns)  # noqa: S102  (generated)
    return cuda.jit(ns[name])


def _key(text: str) -> str:
    import numba

    from ... import __version__
    vers = "\0".join([numba.__version__, getattr(cuda, "__version__", ""), __version__,
                      str(FORMAT_VERSION)])
    return hashlib.sha256((vers + "\0" + text).encode()).hexdigest()[:32]


def _disk_module(text: str):
    """Import `text` from a file in the cache dir (written if missing); None when unusable."""
    d = cache_dir()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        if hasattr(os, "getuid") and d.stat().st_uid != os.getuid():
            raise OSError(f"{d} is owned by another user")
        path = d / f"k_{_key(text)}.py"
        current = path.read_text() if path.exists() else None
        if current != text:
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".py")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
    except OSError as e:
        if str(d) not in _warned:
            _warned.add(str(d))
            logger.warning("CUDA kernel cache %s unusable (%s); compiling in memory only", d, e)
        return None
    modname = f"tracejit_cuda_{path.stem}"
    mod = sys.modules.get(modname)
    if mod is None:
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[modname] = mod
        stats["disk_modules"] += 1
    return mod
