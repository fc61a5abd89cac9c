"""Turn a perf `Report` into what users read: a text or markdown table, JSON, a plot.

Cells follow tracejit.utils.benchmark's format (median and min-max spread, '-' when unknown);
a workload whose compiled result disagreed with eager shows the mismatch where its time would be.
"x floor" is median time / floor time measured in the same run (1.0x is at the floor); the plot
shows its inverse, the fraction of the floor reached.
"""
from __future__ import annotations

import datetime
import importlib
import os
import platform

from tracejit.utils.benchmark import RESULT_HEADERS, fmt_time, format_table, result_cells

from .harness import Report, Row

HEADERS = ("W", "workload", "size", "floor", *RESULT_HEADERS, "x floor eager/compiled")


LEGEND = ("times: median (min-max) of repeated runs after warm-up; speedup = eager / compiled "
          "medians; x floor = median time / floor time (1.0x is at the floor); peers: median "
          "(x floor); first call = trace + compile + first fwd+bwd step; kernels: "
          "forward+backward; check: loss and every gradient against eager (no time unless ok).")


W6_LEGEND = ("tracejit: each cell a fresh process (cold: empty TRACEJIT_CACHE_DIR; warm: the "
             "cache the cold process left); peers: their first call in this run.")


def machine_info(report_backend: str = "llvm") -> dict:
    """CPU model, cores, versions and date, for the header of every report."""
    cpu, flags = platform.processor() or "?", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() == "model name" and cpu in ("?", "", "x86_64"):
                    cpu = val.strip()
                elif key.strip() == "flags" and not flags:
                    flags = val
    except OSError:
        pass
    simd = [f for f in ("avx512f", "avx2", "neon") if f in flags.split()]
    info = {"cpu": cpu, "simd": simd[0] if simd else "-", "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    for mod in ("tracejit", "numpy", "llvmlite", "numba", "torch", "jax"):
        try:
            info[mod] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: not part of this machine
            info[mod] = None
    if report_backend == "cuda":
        try:
            import tracejit as tj
            info["gpu"] = tj.cuda.get_device_name()
        except Exception as exc:  # noqa: BLE001
            info["gpu"] = f"? ({type(exc).__name__})"
    try:
        import numpy as np
        info["blas"] = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # noqa: BLE001
        info["blas"] = "?"
    return info


def machine_line(m: dict) -> str:
    vers = ", ".join(f"{k} {m[k]}" for k in ("python", "numpy", "llvmlite", "numba", "torch",
                                                 "jax") if m.get(k))
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    return (f"{m['cpu']} ({m['simd']}), {m['usable_cores']} of {m['cores']} cores{gpu}, "
            f"BLAS {m['blas']}; {vers}; {m['date']}")


def _x(t: float | None, floor: float | None) -> str:
    return "-" if t is None or not floor else f"{t / floor:.1f}x"


def peer_cell(cell: dict, floor: float | None) -> str:
    if cell.get("status") != "ok":
        return cell.get("message") or "-"
    med = cell["timing"].median
    return fmt_time(med) + ("" if not floor else f" ({med / floor:.1f}x)")


def row_cells(row: Row, peers: list) -> list:
    r, wl = row.result, row.wl
    floor = "-" if row.floor_s is None else (
        f"{fmt_time(row.floor_s)} {'mem' if wl.floor_kind == 'memory' else 'BLAS'}")
    eager_x = _x(r.eager and r.eager.median, row.floor_s)
    comp_x = _x(r.compiled and r.compiled.median, row.floor_s)
    cells = [wl.id, wl.name, wl.size, floor, *result_cells(r),
             "-" if row.floor_s is None else f"{eager_x} / {comp_x}"]
    return cells + [peer_cell(row.peers.get(p, {}), row.floor_s) for p in peers]


def latency_cells(report: Report) -> tuple[list, list]:
    peers = [p for p in report.peers if p != "torch"]
    headers = ["W6 source", "new process, cold cache", "new process, warm cache",
               "first call in this run"] + [f"{p} first call" for p in peers]
    rows = []
    first = {}
    for row in report.rows:
        first.setdefault(row.wl.id, row)
    for lat in report.latency:
        row = first.get(lat["source"])
        note = lat["note"] if lat["note"].startswith(("error", "MISMATCH", "n/a")) else ""
        cells = [lat["source"], note or fmt_time(lat["cold_s"]), note or fmt_time(lat["warm_s"]),
                 fmt_time(row.result.first_call_s) if row else "-"]
        for p in peers:
            cell = row.peers.get(p, {}) if row else {}
            cells.append(fmt_time(cell.get("first_call_s")) if cell.get("status") == "ok"
                         else cell.get("message", "-"))
        rows.append(cells)
    return headers, rows


def backend_line(report: Report) -> str:
    ran = sorted({r.result.backend for r in report.rows if r.result.backend})
    return f"backend requested: {report.backend}; ran: {', '.join(ran) or 'none'}"


def notes(report: Report) -> list:
    out = [f"{row.wl.id} {row.wl.size}: compiled: {row.wl.compiled_part}"
           + "".join(f"; {n}" for n in row.wl.notes)
           for row in report.rows if row.wl.headline]
    details: dict = {}  # one line per distinct reason, naming the workloads it hit
    for row in report.rows:
        if row.result.detail:
            details.setdefault(row.result.detail, []).append(f"{row.wl.id} {row.wl.size}")
    out += [f"{', '.join(ws)}: {d}" for d, ws in details.items()]
    return out + list(report.notes)


def render(report: Report, markdown: bool = False) -> str:
    """The whole report as text (or markdown, for perf/RESULTS.md)."""
    fl = report.floors
    headers = list(HEADERS) + list(report.peers)
    table = format_table(headers, [row_cells(r, report.peers) for r in report.rows], markdown)
    title = f"tracejit perf, scale {report.scale}"
    bullet = "- " if markdown else ""
    parts = [("## " if markdown else "") + title, "",
             f"{bullet}machine: {machine_line(report.machine)}" if report.machine else "",
             f"{bullet}floors: memory {fl.bandwidth / 1e9:.1f} GB/s ({fl.bandwidth_how}); "
             + (f"BLAS {fl.blas / 1e9:.0f} GFLOP/s ({fl.blas_how})" if fl.blas
                else f"BLAS {fl.blas_how}"),
             bullet + backend_line(report), "", table, "", LEGEND]
    if report.latency:
        h, rows = latency_cells(report)
        title6 = "W6 compile latency (first call: trace + compile + run)"
        parts += ["", ("### " if markdown else "") + title6, "", format_table(h, rows, markdown),
                  "", W6_LEGEND]
    parts += ["", ("### " if markdown else "") + "notes", ""]
    parts += [("- " if markdown else "  ") + n for n in notes(report)]
    if report.mismatches:
        parts += ["", "MISMATCH: compiled results differ from eager for "
                  + ", ".join(f"{r.wl.id} {r.wl.size}" for r in report.mismatches)]
    parts.append(f"\nwall time {report.wall_s:.1f} s")
    return "\n".join(p for p in parts if p is not None)


def to_json(report: Report) -> dict:
    fl = report.floors
    rows = []
    for row in report.rows:
        r = row.result
        def ratio(t, floor=row.floor_s):
            return None if t is None or not floor else t.median / floor
        peers = {}
        for p, cell in row.peers.items():
            t = cell.get("timing")
            peers[p] = {"status": cell.get("status"), "message": cell.get("message", ""),
                        "timing": t and t.as_dict(), "first_call_s": cell.get("first_call_s"),
                        "x_floor": ratio(t)}
        rows.append({"id": row.wl.id, "name": row.wl.name, "size": row.wl.size,
                     "floor_kind": row.wl.floor_kind, "floor_amount": row.wl.floor_amount,
                     "floor_s": row.floor_s, "compiled_part": row.wl.compiled_part,
                     "notes": row.wl.notes, "tracejit": r.as_dict(),
                     "eager_x_floor": ratio(r.eager), "compiled_x_floor": ratio(r.compiled),
                     "peers": peers})
    return {"scale": report.scale, "backend": report.backend, "machine": report.machine,
            "floors": {"bandwidth_GBps": fl.bandwidth / 1e9,
                       "blas_GFLOPs": fl.blas and fl.blas / 1e9,
                       "bandwidth_how": fl.bandwidth_how, "blas_how": fl.blas_how},
            "rows": rows, "compile_latency": report.latency, "peers": report.peers,
            "notes": notes(report), "mismatches": [r.wl.id for r in report.mismatches],
            "wall_s": report.wall_s}


def plot(report: Report, path: str) -> None:
    """Bars: speedup per workload, and fraction of the floor reached per implementation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r.wl.id}\n{r.wl.size}" for r in report.rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(labels)), 8))
    speed = [r.result.speedup or 0.0 for r in report.rows]
    ax1.bar(range(len(labels)), speed, color="tab:blue")
    ax1.axhline(1.0, color="gray", lw=0.8)
    ax1.set_xticks(range(len(labels)), labels, fontsize=8)
    ax1.set_ylabel("speedup (eager / compiled)")
    ax1.set_title("tracejit compiled vs eager (0 = no valid compiled time)")
    floored = [r for r in report.rows if r.floor_s]
    series = {"tracejit eager": [r.result.eager for r in floored],
              "tracejit compiled": [r.result.compiled for r in floored]}
    for p in report.peers:
        series[p] = [r.peers.get(p, {}).get("timing") for r in floored]
    width = 0.8 / max(1, len(series))
    for k, (name, times) in enumerate(series.items()):
        frac = [row.floor_s / t.median if t else 0.0 for row, t in zip(floored, times)]
        xs = [i + k * width for i in range(len(floored))]
        ax2.bar(xs, frac, width, label=name)
        for x, f in zip(xs, frac):
            if f:
                ax2.text(x, f + 0.01, f"{f:.0%}" if f >= 0.01 else f"{f:.1%}", ha="center",
                         fontsize=6)
    ax2.set_xticks([i + 0.4 - width / 2 for i in range(len(floored))],
                   [f"{r.wl.id}\n{r.wl.size}" for r in floored], fontsize=8)
    ax2.set_ylabel("fraction of floor reached")
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
