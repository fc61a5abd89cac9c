"""perf: the eager-vs-compiled comparison of tracejit on the workloads of WORKLOADS.md.

`python -m perf` (or `--quick`) times W1..W7 eager and compiled in one process, checks every
compiled result against eager, and reports speedups, compile times, kernel counts and the
fraction of the machine's floors reached, with torch and jax as peers when installed.
perf/workloads.py defines the workloads, perf/peers.py the peers, perf/harness.py runs them and
perf/report.py formats the result; the timing rules live in tracejit.utils.benchmark.
"""
