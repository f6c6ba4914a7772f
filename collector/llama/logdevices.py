"""The devices a llama.cpp load used, from its log: name, backend, description, PCI id, memory (MiB).

Every supported build names the devices a model is loaded onto (`llama_prepare_model_devices: using device ...`,
src/llama.cpp); the `device_info` list (every device the build can use) adds their total memory. Logs that lack
those lines (a pasted excerpt, `--version` output) still name devices in the backends' own start-up lines: Vulkan
lists the devices it drives (`ggml_vulkan: 0 = ...`, index i is device Vulkan<i>), Metal the one it picked
(`ggml_metal_init: picking default device: ...`); Metal's device name (MTL0, or Metal in older builds) is taken
from the buffers the log names, never guessed.
"""

from __future__ import annotations

import re

from collector.llama.devices import backend_of
from collector.llama.logmemory import mib
from collector.llama.logtext import count
from collector.records.schema import LlamaDevice

# "%s: using device %s (%s) (%s) - %zu MiB free" (name, description, PCI id or "unknown id"); older builds had no id.
# Read with string operations (a description may hold parentheses: "llvmpipe (LLVM 15.0.6, 256 bits)"), so a long
# line costs one pass
_USING = re.compile(r"^\w{1,60}: using device (\S+) \(")
_FREE = " MiB free"
_PCI = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_INFO = re.compile(r"^\s*- (\S+)\s*: (.+?) \((\d+) MiB, (\d+) MiB free\)")
_VULKAN = re.compile(r"^ggml_vulkan: (\d{1,4}) = (.+) \(([^()]*)\) \| uma: ")
_METAL = re.compile(r"^ggml_metal_\w+: (picking default device|GPU name|found device):\s+(.*\S)\s*$")
_METAL_BUFFER = re.compile(r"^(MTL\d+|Metal)")


def _using(line: str) -> LlamaDevice | None:
    m = _USING.match(line)
    rest = line[m.end():].rstrip() if m else ""
    if not rest.endswith(_FREE):
        return None
    body, sep, free_text = rest[: -len(_FREE)].rpartition(") - ")
    free = count(free_text)
    if not sep or free is None or m is None:
        return None
    name = m.group(1)
    desc, sep, pci = body.rpartition(") (")
    if not sep or "(" in pci or ")" in pci:  # an older build's line: no PCI id
        desc, pci = body, ""
    if not desc:
        return None
    return LlamaDevice(name=name, backend=backend_of(name), description=desc,
                       pci_bus_id=pci if _PCI.match(pci) else None, memory_free_mib=mib(free_text))


def _metal_name(buffer_names: list[str]) -> str | None:
    return next((m.group(1) for b in buffer_names if (m := _METAL_BUFFER.match(b))), None)


def devices_of(lines: list[str], buffer_names: list[str]) -> list[LlamaDevice]:
    """The devices the load used, in the order llama.cpp lists them; [] when the log names none.

    `lines` are clean lines (logparse strips prefixes first); `buffer_names` every buffer the log sized."""
    used: dict[str, LlamaDevice] = {}
    totals: dict[str, float] = {}
    vulkan: dict[str, LlamaDevice] = {}
    metal: dict[str, list[str]] = {}
    for line in lines:
        if (dev := _using(line)) is not None:
            used[dev.name] = dev  # a draft model lists the same devices again: one entry each
        elif (m := _INFO.match(line)) and (total := mib(m.group(3))) is not None:
            totals[m.group(1)] = total
        elif m := _VULKAN.match(line):
            name = f"Vulkan{m.group(1)}"
            vulkan[name] = LlamaDevice(name=name, backend="Vulkan", description=m.group(2))
        elif m := _METAL.match(line):
            metal.setdefault(m.group(1), []).append(m.group(2))
    if used:
        return [d.model_copy(update={"memory_total_mib": totals.get(d.name)}) for d in used.values()]
    if vulkan:
        return list(vulkan.values())
    # "found device" lists every Metal device of the Mac: a line names the device used only when it names one
    keys = ("picking default device", "GPU name", "found device")
    named = [d for key in keys if len(d := set(metal.get(key, []))) == 1]
    desc = named[0].pop() if named else None
    mtl = _metal_name(buffer_names)
    return [LlamaDevice(name=mtl, backend=backend_of(mtl), description=desc)] if mtl and desc else []
