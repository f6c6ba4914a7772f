"""The GPUs of a record: the devices llama.cpp lists and uses, with facts from the vendor's library added.

llama.cpp knows every device it can drive, whatever the vendor (`llama-server --list-devices`); NVML (NVIDIA) and
amdsmi or the amdgpu sysfs files (AMD) only add facts and telemetry. A listed device is matched to a vendor's GPU
by PCI bus id, else by name, else by order among the unmatched. A vendor GPU that llama.cpp does not list is kept
with no `llama_device`, so that the run can say it went unused.

After a run, a record keeps only the GPUs that llama.cpp put weights or KV cache on (its buffers in the load log):
a host whose GPU llama.cpp did not use (`-ngl 0`, `--device none`, a CPU build) is a CPU record, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar

from collector.host.amdgpu import AmdCard, norm_pci
from collector.llama.devices import buffer_device, is_gpu_backend, is_software
from collector.records.schema import GpuInfo, Host, LlamaDevice, Memory, Placement
from collector.records.store import AnyRecord

T = TypeVar("T")
SOFTWARE_WARNING = ("{dev} ({name}) is a software device (a CPU renderer presented as a GPU): these speeds are "
                    "the CPU's, not a GPU's, and are never published as a GPU's speed")


def host_gpus(listed: list[LlamaDevice], nvidia: list[GpuInfo], amd: list[AmdCard],
              amd_source: str | None = None) -> list[GpuInfo]:
    """One GpuInfo per GPU device llama.cpp lists (name = its description), enriched by NVML's or AMD's facts;
    then the vendor GPUs llama.cpp does not list (llama_device None)."""
    nv_left, amd_left = list(nvidia), list(amd)
    out: list[GpuInfo] = []
    for dev in listed:
        if not is_gpu_backend(dev.backend):
            continue
        g = GpuInfo(name=dev.description or dev.name, backend=dev.backend, llama_device=dev.name,
                    pci_bus_id=dev.pci_bus_id, vram_total_mib=dev.memory_total_mib,
                    software=True if is_software(dev.description) else None)
        if g.software:
            out.append(g)
        elif (nv := _match(g, nv_left, lambda n: (n.pci_bus_id, n.name), "nvidia")) is not None:
            nv_left.remove(nv)  # NVML's name and memory total are exact; llama.cpp's device name and backend kept
            out.append(nv.model_copy(update={"backend": g.backend, "llama_device": g.llama_device,
                                             "telemetry": "nvml", "vram_total_mib": nv.vram_total_mib
                                             or g.vram_total_mib}))
        elif (card := _match(g, amd_left, lambda c: (c.pci_bus_id, c.name), "amd", "radeon")) is not None:
            amd_left.remove(card)
            out.append(g.model_copy(update={"pci_bus_id": card.pci_bus_id, "telemetry": amd_source,
                                            "vram_total_mib": card.vram_total_mib or g.vram_total_mib,
                                            "power_limit_w": card.power_limit_w}))
        else:
            out.append(g)
    out += [n.model_copy(update={"telemetry": "nvml"}) for n in nv_left]
    out += [GpuInfo(name=c.name or f"AMD GPU {c.pci_bus_id}", pci_bus_id=c.pci_bus_id, vram_total_mib=c.vram_total_mib,
                    power_limit_w=c.power_limit_w, telemetry=amd_source) for c in amd_left]
    return out


def _match(g: GpuInfo, pool: list[T], key: Callable[[T], tuple[str | None, str | None]],
           *vendor_words: str) -> T | None:
    """The vendor GPU of a listed device: the same PCI id; else the same name; else the first one left when the
    device's name says it is that vendor's (the order is the same; Vulkan's AMD names carry the driver,
    "AMD Radeon RX 7900 XTX (RADV NAVI31)", amdsmi's do not)."""
    pci = norm_pci(g.pci_bus_id)
    if pci and (hit := next((x for x in pool if norm_pci(key(x)[0]) == pci), None)) is not None:
        return hit
    if (hit := next((x for x in pool if key(x)[1] and key(x)[1] == g.name), None)) is not None:
        return hit
    if pci is None and pool and any(w in g.name.lower() for w in vendor_words):
        return pool[0]
    return None


def used_devices(placement: Placement, memory: Memory) -> set[str] | None:
    """The llama.cpp devices holding weights or KV cache in this load; None when the log does not say."""
    names = {d for d in (buffer_device(b) for b in [*memory.model_buffers, *memory.kv_buffers]) if d}
    if names:
        return names
    if placement.gpu_layers == 0 or memory.model_buffers:
        return set()  # the model was loaded, onto host buffers only
    if placement.gpu_layers and placement.llama_devices:
        return {d.name for d in placement.llama_devices if is_gpu_backend(d.backend)}
    return None


def as_used(host: Host, placement: Placement, memory: Memory) -> tuple[Host, list[str]]:
    """The host with only the GPUs llama.cpp used, and one warning per GPU left out or measured in software.
    Unchanged (no warnings) when the log does not say which devices were used (a run that failed to load)."""
    used = used_devices(placement, memory)
    if used is None:
        return host, []
    kept, notes = [], []
    for g in host.gpus:
        if g.llama_device is not None and g.llama_device in used:
            kept.append(g)
            if g.software:
                notes.append(SOFTWARE_WARNING.format(dev=g.llama_device, name=g.name))
        elif g.llama_device is not None:
            notes.append(f"{g.llama_device} ({g.name}) holds no layer or KV cache of this run (-ngl 0 or "
                         "--device none?): not used")
        else:
            hint = "" if used else " (a CPU build?)"
            notes.append(f"{g.name} is not a device this llama.cpp build lists{hint}: not used")
    if len(kept) == len(host.gpus):
        return host, notes
    if not kept:
        notes.append("llama.cpp used no GPU of this host: filed as a CPU record")
    return host.model_copy(update={"gpus": kept}), notes


def software_host(host: Host) -> bool:
    """Whether a record's speed was measured on a software device (never published as a GPU's speed)."""
    return any(g.software for g in host.gpus)


def software_records(records: Mapping[Path, AnyRecord]) -> list[str]:
    """One message per record measured on a software device: test data, which `validate` refuses in a data set."""
    return [f"{path}: measured on a software device ({', '.join(g.name for g in rec.host.gpus if g.software)}): "
            "its speeds are the CPU's, not a GPU's; such records stay out of the data set" for path, rec in
            sorted(records.items()) if software_host(rec.host)]


def sampled(gpus: Iterable[GpuInfo]) -> tuple[list[int], list[str]]:
    """(NVML indices, AMD PCI ids) of the GPUs whose telemetry the sampler reads."""
    gpus = list(gpus)
    nv = [g.index for g in gpus if g.telemetry == "nvml" and g.index is not None]
    amd = [p for g in gpus if g.telemetry in ("amdsmi", "amdgpu-sysfs") and (p := norm_pci(g.pci_bus_id))]
    return nv, amd


def loaded_on(host: Host, log_text: str, printed: Iterable[str] = ()) -> list[GpuInfo]:
    """The GPUs a loaded server's log says it uses (all of the host's while the log does not say): what to sample.
    `printed`: the model file's strings llama.cpp prints (logparse.parse_server_log)."""
    from collector.base.errors import CollectorError
    from collector.llama.logparse import parse_server_log

    try:
        facts = parse_server_log(log_text, printed)
    except CollectorError:  # a log it cannot read names no device: every GPU of the host is sampled
        return list(host.gpus)
    return as_used(host, facts.placement, facts.memory)[0].gpus
