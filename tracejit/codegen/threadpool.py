"""Thread pool that runs compiled kernels on all cores: this module owns splitting an iteration
range [0, total) into contiguous chunks and running them on a persistent set of daemon worker
threads plus the calling thread.  Kernels are ctypes function pointers, which release the GIL while
they run, so plain Python threads give real parallelism without any native threading runtime.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

_tasks: queue.SimpleQueue = queue.SimpleQueue()
_workers: list[threading.Thread] = []
_pool_lock = threading.Lock()
_local = threading.local()  # .is_worker marks pool threads
_closing = False  # set at interpreter exit: from then on everything runs inline


def num_threads() -> int:
    """Threads to use: env TRACEJIT_NUM_THREADS, else the CPUs this process may run on."""
    env = os.environ.get("TRACEJIT_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    if not _cpus:
        _cpus.append(max(1, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1)
    return _cpus[0]


_cpus: list = []      # the affinity count, read once per process (a syscall per kernel call)


class _Job:
    """Completion state of one parallel_for call, shared by its chunks."""

    __slots__ = ("done", "error", "lock", "remaining")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.lock = threading.Lock()
        self.done = threading.Lock()  # held until the last chunk finishes
        self.done.acquire()
        self.error: BaseException | None = None

    def run(self, fn: Callable[..., Any], start: int, stop: int, args: tuple) -> None:
        try:
            fn(start, stop, *args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller to re-raise
            if self.error is None:
                self.error = exc
        with self.lock:
            self.remaining -= 1
            last = self.remaining == 0
        if last:
            self.done.release()


def _worker() -> None:
    _local.is_worker = True
    while True:
        task = _tasks.get()
        if task is None:
            return
        task[0].run(*task[1:])


def _ensure_workers(n: int) -> None:
    """Grow the persistent pool to n workers (created lazily, never shrunk)."""
    if len(_workers) >= n:
        return
    with _pool_lock:
        while len(_workers) < n:
            t = threading.Thread(target=_worker, name=f"tracejit-worker-{len(_workers)}",
                                 daemon=True)
            t.start()
            _workers.append(t)


def parallel_for(fn: Callable[..., Any], total: int, args: tuple, grain: int) -> None:
    """Run fn(start, stop, *args) over contiguous chunks covering [0, total) exactly once.

    At most num_threads() chunks of at least `grain` iterations; one chunk runs inline.  Returns
    when every chunk is done, re-raising the first exception any chunk raised.
    """
    if total <= 0:
        return
    nchunks = min(num_threads(), total // max(1, grain))
    # A worker waiting on its own sub-chunks could deadlock the pool: nested calls run inline.
    if nchunks <= 1 or _closing or getattr(_local, "is_worker", False):
        fn(0, total, *args)
        return
    _ensure_workers(nchunks - 1)
    bounds = [total * i // nchunks for i in range(nchunks + 1)]
    job = _Job(nchunks)
    for i in range(1, nchunks):
        _tasks.put((job, fn, bounds[i], bounds[i + 1], args))
    job.run(fn, 0, bounds[1], args)
    # Help drain the queue instead of sleeping: if workers are slow to wake (or busy with another
    # caller's chunks) this thread makes progress itself, which also keeps tiny calls cheap.
    while not job.done.acquire(blocking=False):
        try:
            task = _tasks.get_nowait()
        except queue.Empty:
            job.done.acquire()
            break
        if task is None:  # shutdown sentinel meant for a worker: pass it on
            _tasks.put(None)
            job.done.acquire()
            break
        task[0].run(*task[1:])
    if job.error is not None:
        raise job.error


def _shutdown() -> None:
    # Let idle workers leave their loop at exit so none is parked inside the queue during
    # interpreter finalisation; daemon=True means exit never waits for a busy one.
    global _closing
    _closing = True
    for _ in _workers:
        _tasks.put(None)


def _after_fork_in_child() -> None:
    # Worker threads do not survive fork(); start a fresh pool on demand in the child.
    global _tasks, _pool_lock
    _tasks = queue.SimpleQueue()
    _pool_lock = threading.Lock()
    _workers.clear()
    _cpus.clear()


atexit.register(_shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
