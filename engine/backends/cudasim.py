"""Whether Numba's CUDA simulator is switched on (NUMBA_ENABLE_CUDASIM): the one place
the registry, the CUDA backend and the tests ask."""
import os


def cuda_simulator_enabled() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0")
