"""Devices as llama.cpp names them: `CUDA0`, `ROCm1`, `Vulkan0`, `MTL0`, `SYCL0`, `CPU`.

llama.cpp knows every device it can use, whatever the vendor (`llama-server --list-devices`, and the load log's
`using device ...` lines); vendor libraries (NVML, amdsmi) only add telemetry. `backend_of` maps a device name to
the ggml backend that drives it, `list_devices` asks a llama-server which devices it can use.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from collector.records.schema import LlamaDevice

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


# `llama-server --list-devices` (common/arg.cpp common_print_available_devices): "Available devices:", then
# "  %s: %s (%zu MiB, %zu MiB free)" per non-CPU device, or "  (none)"
_LISTED = re.compile(r"^\s+(\S+): (.*) \((\d+) MiB, (\d+) MiB free\)\s*$")
# Mesa's and Google's CPU renderers: a Vulkan "GPU" whose speed is the CPU's
_SOFTWARE = re.compile(r"\b(llvmpipe|lavapipe|softpipe|swiftshader)\b", re.I)
# the variables that choose which devices a backend shows; they reach llama.cpp unchanged (tools.clean_env)
DEVICE_ENV = ("GGML_VK_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
              "ONEAPI_DEVICE_SELECTOR")


MAX_DEVICES = 64  # more devices than any host has: a list longer than this is not llama.cpp's


def parse_device_list(text: str) -> list[LlamaDevice] | None:
    """The devices of `--list-devices` output ([] for "(none)"); None when the text is not such a list. A size that
    cannot be real (a hundred digits) is unknown; a line too long for a device's is no device."""
    from collector.llama.logmemory import mib

    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == "Available devices:"), None)
    if start is None:
        return None
    out: list[LlamaDevice] = []
    for line in lines[start + 1:]:
        if len(line) <= 1024 and (m := _LISTED.match(line)) and len(out) < MAX_DEVICES:
            name, desc, total, free = m.groups()
            out.append(LlamaDevice(name=name, backend=backend_of(name), description=desc.strip() or None,
                                   memory_total_mib=mib(total), memory_free_mib=mib(free)))
    return out


def list_devices(server: Path) -> list[LlamaDevice] | None:
    """The devices this llama-server can use (`--list-devices`, clean environment); None when it cannot say
    (a build older than the flag, or one that does not start)."""
    return _list_devices(server, tuple((k, os.environ.get(k)) for k in DEVICE_ENV))


@lru_cache(maxsize=16)
def _list_devices(server: Path, device_env: tuple[tuple[str, str | None], ...]) -> list[LlamaDevice] | None:
    from collector.llama.tools import ToolError, run_tool

    try:
        res = run_tool([str(server), "--list-devices"], "list devices", 60, merge=False, check=False)
    except ToolError:
        return None
    return parse_device_list(res.text) if res.returncode == 0 else None


def is_software(description: str | None) -> bool:
    """Whether a device is a CPU renderer presented as a GPU (Mesa's llvmpipe/lavapipe, SwiftShader)."""
    return bool(description and _SOFTWARE.search(description))


def buffer_device(buffer: str) -> str | None:
    """The device a llama.cpp buffer lives on ("Vulkan0" -> "Vulkan0", "MTL0_Mapped" -> "MTL0"); None for host
    buffers (CPU, CPU_Mapped, CPU_REPACK, CUDA_Host: pinned host memory) and names of no device."""
    name = re.sub(r"_(Mapped|Split)$", "", buffer.strip())
    return name if is_gpu_backend(backend_of(name)) else None
