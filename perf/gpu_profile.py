"""`python perf/gpu_profile.py W4 [steps]`: warm compiled fwd+bwd steps of one workload of
perf/gpu_check.py at full size, for a kernel profiler to look at, e.g.

    ncu -k regex:k0_ --launch-skip 4 --launch-count 4 --section SpeedOfLight \\
        --section Occupancy --section LaunchStats python perf/gpu_profile.py W4

The first step compiles (its launches are the ones to skip); the kernel names are the fused
kernels' (`k<i>_<variant>`), forward and backward graphs numbering from 0 each.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wid, steps = argv[0], int(argv[1]) if len(argv) > 1 else 3
    import tracejit as tj
    from perf.gpu_check import compiled_step
    step = compiled_step(wid, "full", warmup=steps)
    tj.cuda.synchronize()
    st = step.fn.last_stats
    print(f"{wid}: {steps} compiled steps; kernels fwd+bwd "
          f"{st['kernels_forward']}+{st['kernels_backward']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
