"""What a warm compiled CUDA training step asks of the GPU, counted under Numba's CUDA simulator
(perf/cuda_census.py): kernel launches (each one host time on a real GPU), host<->device copies
(each one a synchronisation) and device allocations the caching pool could not serve."""
import ctypes.util
import os

import pytest

if not os.environ.get("NUMBA_ENABLE_CUDASIM") and not (
        os.path.exists("/dev/nvidia0") or ctypes.util.find_library("cuda")):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
pytest.importorskip("numba.cuda")
from numba import config  # noqa: E402

if not config.ENABLE_CUDASIM:
    pytest.skip("the census counts under the CUDA simulator", allow_module_level=True)

from perf.cuda_census import census  # noqa: E402

# launches per warm fwd+bwd step: W1 a split full reduction finishing in its own launch + 1
# (the backward's seed is a host scalar: no fill); W3 2 forward + 2; W4 the target pick fused
# into the row kernels (no gather or scatter launches); W2's whole step with its SGD update,
# written in place (no copy-back launches)
LIMITS = {"W1": 2, "W3": 4, "W4": 3, "W2 whole": 19}


@pytest.mark.parametrize("wid", list(LIMITS))
def test_compiled_step_launches_no_more_kernels_and_copies_nothing(wid):
    c = census(wid, "compiled", reps=1)
    assert c["launches"] <= LIMITS[wid], c
    # no uploads, allocations or copies back: the index-error flag (set by W4's target pick)
    # is mapped host memory, read at the sync without a copy
    assert c["h2d"] == 0 and c["allocs"] == 0 and c["d2h"] == 0, c
