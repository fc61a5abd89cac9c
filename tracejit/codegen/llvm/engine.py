"""Compile/load engine of the LLVM backend: this module owns turning textual LLVM IR into callable
machine-code addresses.  It runs the O3 new-pass-manager pipeline (loop and SLP vectorisation on)
for the host CPU, emits an object file, loads it into a process-lifetime MCJIT engine, and caches
the result twice: in memory (IR text -> loaded engine) and on disk (a checksummed object file per
IR/target/toolchain key), so a new process with a warm cache skips the optimiser and codegen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pathlib
import struct
import tempfile
import threading
import time
from typing import Any

logger = logging.getLogger("tracejit.code")

# Bump whenever the pipeline options or entry layout change: it is part of the disk key.
FORMAT_VERSION = 1
_MAGIC = b"TJITOBJ\0"
# magic, format version, payload length, sha256(payload)
_HEADER = struct.Struct("<8sIQ32s")

_lock = threading.Lock()
_memory: dict[str, _Loaded] = {}
# MCJIT engines own the machine code; freeing one would leave dangling function pointers.
_engines: list[Any] = []
_stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0, "corrupt_entries_rebuilt": 0}
_warned_dirs: set[str] = set()
_llvm_state: _LLVMState | None = None


class _Loaded:
    """One loaded object: its engine and the addresses looked up so far."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.addresses: dict[str, int] = {}

    def lookup(self, names: list[str]) -> dict[str, int]:
        out = {}
        for name in names:
            addr = self.addresses.get(name)
            if addr is None:
                addr = self.engine.get_function_address(name)
                if not addr:
                    raise KeyError(f"function {name!r} not found in compiled module")
                self.addresses[name] = addr
            out[name] = addr
        return out


class _LLVMState:
    """Process-wide LLVM objects, built once on first use (import + init take tens of ms)."""

    def __init__(self) -> None:
        import llvmlite
        import llvmlite.binding as llvm

        # llvmlite >= 0.45 initialises the core itself; llvm.initialize() now raises.
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.initialize_native_asmparser()
        self.llvm = llvm
        self.triple = llvm.get_process_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
        self.target = llvm.Target.from_triple(self.triple)
        self.tm = self.new_target_machine()
        self.data_layout = str(self.tm.target_data)
        # llvmlite 0.50 takes no size_level here: the default pipeline is O3, not Os/Oz.
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        self.pass_builder = llvm.create_pass_builder(self.tm, pto)
        try:
            import tracejit

            tj_version = str(getattr(tracejit, "__version__", "0"))
        except ImportError:
            tj_version = "0"
        self.key_prefix = "\0".join([
            self.triple, self.cpu, self.features, llvmlite.__version__,
            ".".join(map(str, llvm.llvm_version_info)), str(FORMAT_VERSION), tj_version,
        ])

    def new_target_machine(self) -> Any:
        # jitdefault = large code model on 64-bit: MCJIT may place sections more than 2 GiB apart.
        return self.target.create_target_machine(
            cpu=self.cpu, features=self.features, opt=3, reloc="default",
            codemodel="jitdefault", jit=True)

    def optimize(self, llvm_ir: str) -> Any:
        mod = self.llvm.parse_assembly(llvm_ir)
        # llvmlite.ir leaves the triple/layout unknown; the vectoriser needs the real ones.
        mod.triple = self.triple
        mod.data_layout = self.data_layout
        mod.verify()
        # A module pass manager is consumed by run(): build a fresh one each time.
        self.pass_builder.getModulePassManager().run(mod, self.pass_builder)
        return mod

    def load(self, obj: bytes) -> _Loaded:
        llvm = self.llvm
        # One engine per object: two kernels may export the same symbol name.  MCJIT insists on
        # an initial module; removing it keeps finalize_object() from running codegen on it
        # (~1 ms), and since nothing is code-generated here a default target machine will do.
        module = llvm.parse_assembly("")
        tm = self.target.create_target_machine(codemodel="jitdefault", jit=True)
        engine = llvm.create_mcjit_compiler(module, tm)
        engine.remove_module(module)
        engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
        engine.finalize_object()
        _engines.append(engine)
        return _Loaded(engine)


def _state() -> _LLVMState:
    global _llvm_state
    if _llvm_state is None:
        _llvm_state = _LLVMState()
    return _llvm_state


def cache_dir() -> pathlib.Path:
    """The on-disk object cache directory (not necessarily existing yet)."""
    env = os.environ.get("TRACEJIT_CACHE_DIR")
    if env:
        return pathlib.Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache"
    return base / "tracejit"


def cache_stats() -> dict:
    """A snapshot of the cache counters."""
    with _lock:
        return dict(_stats)


def _warn_once(directory: pathlib.Path, message: str) -> None:
    if str(directory) not in _warned_dirs:
        _warned_dirs.add(str(directory))
        logger.warning("%s; object cache is memory-only", message)


def _usable_cache_dir() -> pathlib.Path | None:
    """The cache dir, created 0700 if missing; None if unusable (warned once)."""
    directory = cache_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = directory.stat()
    except OSError as exc:
        _warn_once(directory, f"cannot create cache dir {directory}: {exc}")
        return None
    # Objects from someone else's directory would be executed as our code: refuse them.
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        _warn_once(directory, f"cache dir {directory} is owned by another user")
        return None
    return directory


def _read_entry(path: pathlib.Path) -> bytes | None:
    """The payload of a valid entry; None if missing.  A corrupt entry is deleted and counted."""
    try:
        with open(path, "rb") as f:
            # A looser-permission dir of ours may hold a file planted by someone else: skip it
            # (our write below then replaces it).
            if hasattr(os, "getuid") and os.fstat(f.fileno()).st_uid != os.getuid():
                return None
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.debug("cannot read cache entry %s: %s", path, exc)
        return None
    if len(data) >= _HEADER.size:
        magic, version, length, digest = _HEADER.unpack_from(data)
        payload = data[_HEADER.size:]
        if (magic == _MAGIC and version == FORMAT_VERSION and length == len(payload)
                and hashlib.sha256(payload).digest() == digest):
            return payload
    logger.warning("corrupt object cache entry %s; rebuilding it", path)
    _stats["corrupt_entries_rebuilt"] += 1
    try:
        path.unlink()
    except OSError:
        pass
    return None


def _write_entry(directory: pathlib.Path, path: pathlib.Path, payload: bytes) -> None:
    header = _HEADER.pack(_MAGIC, FORMAT_VERSION, len(payload), hashlib.sha256(payload).digest())
    try:
        # Write-then-rename: readers see either no entry or a complete one, and concurrent
        # writers of the same key just replace each other's identical file.  Power loss can
        # still leave garbage, which the checksum catches.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    except OSError as exc:
        _warn_once(directory, f"cache dir {directory} is not writable ({exc})")
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(payload)
        os.replace(tmp, path)
    except OSError as exc:
        _warn_once(directory, f"cannot write cache entry in {directory} ({exc})")
        try:
            os.unlink(tmp)
        except OSError:
            pass


def compile_ir(llvm_ir: str, names: list[str]) -> dict[str, int]:
    """Compile textual LLVM IR (as produced by str(llvmlite.ir.Module)) at O3 for the host CPU and
    return the address of each named function. Cached in memory and on disk."""
    with _lock:  # llvmlite's global LLVM context is not thread-safe; serialise everything.
        loaded = _memory.get(llvm_ir)
        if loaded is not None:
            _stats["memory_hits"] += 1
            return loaded.lookup(names)

        st = _state()
        t0 = time.perf_counter()
        key = hashlib.sha256(f"{st.key_prefix}\0{llvm_ir}".encode()).hexdigest()
        directory = _usable_cache_dir()
        path = directory / f"{key}.o" if directory is not None else None
        obj = _read_entry(path) if path is not None else None
        if obj is not None:
            loaded = st.load(obj)
            _stats["disk_hits"] += 1
            logger.debug("disk hit %s: loaded %d bytes in %.2f ms",
                         key[:12], len(obj), (time.perf_counter() - t0) * 1e3)
        else:
            obj = st.tm.emit_object(st.optimize(llvm_ir))
            loaded = st.load(obj)
            _stats["compiles"] += 1
            logger.debug("compiled %s (%d chars IR -> %d bytes) in %.2f ms",
                         key[:12], len(llvm_ir), len(obj), (time.perf_counter() - t0) * 1e3)
            if path is not None:
                _write_entry(directory, path, obj)
        _memory[llvm_ir] = loaded
        return loaded.lookup(names)


def optimized_ir(llvm_ir: str) -> str:
    """The module after the O3 pipeline (used by tests to check vectorisation)."""
    with _lock:
        return str(_state().optimize(llvm_ir))


def _clear_memory_cache() -> None:
    """Forget in-memory entries (engines stay alive: callers may still hold addresses)."""
    with _lock:
        _memory.clear()
