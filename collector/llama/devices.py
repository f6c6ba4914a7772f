"""Devices as llama.cpp names them: `CUDA0`, `ROCm1`, `Vulkan0`, `MTL0`, `SYCL0`, `CPU`.

llama.cpp knows every device it can use, whatever the vendor (`llama-server --list-devices`, and the load log's
`using device ...` lines); vendor libraries (NVML, amdsmi) only add telemetry. `backend_of` maps a device name to
the ggml backend that drives it.
"""

from __future__ import annotations

import re

# ggml backend registry names as they prefix device names (ggml-*/ backends' get_name); HIP builds name ROCm0
_PREFIXES = (("CUDA", "CUDA"), ("ROCm", "ROCm"), ("HIP", "ROCm"), ("Vulkan", "Vulkan"), ("MTL", "Metal"),
             ("Metal", "Metal"), ("SYCL", "SYCL"), ("OpenCL", "OpenCL"), ("MUSA", "MUSA"), ("CANN", "CANN"),
             ("BLAS", "BLAS"), ("RPC", "RPC"), ("CPU", "CPU"))
_NAME = re.compile(r"^([A-Za-z]+?)(\d*)$")


def backend_of(device: str) -> str | None:
    """The backend of a llama.cpp device name ("Vulkan0" -> "Vulkan", "MTL0" -> "Metal"); None when unknown."""
    m = _NAME.match(device.strip())
    if not m:
        return None
    head = m.group(1)
    return next((backend for prefix, backend in _PREFIXES if head.lower() == prefix.lower()), None)


def is_gpu_backend(backend: str | None) -> bool:
    """Backends that drive an accelerator with memory of its own (not the CPU, BLAS or an RPC proxy)."""
    return backend not in (None, "CPU", "BLAS", "RPC")
