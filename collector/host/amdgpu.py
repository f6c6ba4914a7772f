"""AMD GPU facts and telemetry: AMD's own library (`amdsmi`) when it imports and starts, else the amdgpu driver's
sysfs files. A host without either gives no AMD cards and no error; what a source cannot say stays None.

Units as the record keeps them: MiB, W, J. amdsmi reports VRAM in MiB (`amdsmi_get_gpu_vram_usage`), power in W
(`amdsmi_get_power_info`; its `power_limit` is W in some releases and µW in others, so it is not read) and energy
as a counter times its resolution in µJ (`amdsmi_get_energy_count`). sysfs
gives bytes (`mem_info_vram_total`, `mem_info_vram_used`), µW (hwmon `power1_average`, or `power1_input` on newer
kernels; `power1_cap` for the limit) and µJ (hwmon `energy1_input`, where the driver has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
AMD_VENDOR = "0x1002"


@dataclass(frozen=True)
class AmdCard:
    """One AMD GPU as its driver describes it; pci_bus_id ("0000:03:00.0") ties it to llama.cpp's device."""

    pci_bus_id: str
    name: str | None
    vram_total_mib: float | None
    power_limit_w: float | None


@dataclass(frozen=True)
class AmdSample:
    vram_used_mib: float | None
    power_w: float | None
    energy_j: float | None  # a counter: only differences mean anything


class AmdSource:
    """What both sources offer: the cards, one sample of a card, and closing the library."""

    name = ""

    def cards(self) -> list[AmdCard]:
        raise NotImplementedError

    def sample(self, pci_bus_id: str) -> AmdSample:
        raise NotImplementedError

    def close(self) -> None:
        pass


def open_amd(amdsmi: Any = None, sysfs: Path = Path("/sys")) -> AmdSource | None:
    """amdsmi (the module given, else the installed one) if it starts, else sysfs if it has AMD cards, else None."""
    mod = amdsmi if amdsmi is not None else _import_amdsmi()
    if mod is not None:
        try:
            mod.amdsmi_init()
            return _Smi(mod)
        except Exception:  # AmdSmiLibraryException without a driver; the library's own types are not ours to name
            pass
    src = _Sysfs(sysfs)
    return src if src.devices else None


def norm_pci(bus_id: str | None) -> str | None:
    """One spelling of a PCI address: NVML's "00000000:01:00.0" and llama.cpp's "0000:01:00.0" -> "0000:01:00.0"."""
    if not bus_id or bus_id.count(":") != 2:
        return None
    domain, bus, rest = bus_id.strip().lower().split(":")
    return f"{int(domain, 16):04x}:{bus}:{rest}" if all(c in "0123456789abcdef" for c in domain) else None


def _import_amdsmi() -> Any:
    try:
        import amdsmi  # ROCm's bindings: present only on AMD hosts
    except Exception:  # ImportError, or the bindings failing to find libamd_smi.so
        return None
    return amdsmi


class _Smi(AmdSource):
    name = "amdsmi"

    def __init__(self, mod: Any) -> None:
        self.mod = mod
        self.handles: dict[str, Any] = {}
        for h in self._call(mod.amdsmi_get_processor_handles) or []:
            bdf = norm_pci(self._call(lambda: mod.amdsmi_get_gpu_device_bdf(h)))  # noqa: B023 (called at once)
            if bdf:
                self.handles[bdf] = h

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except Exception:  # not supported on this card / virtual machine guest: unknown, not a failed probe
            return None

    def cards(self) -> list[AmdCard]:
        out = []
        for bdf, h in self.handles.items():
            asic = self._call(lambda: self.mod.amdsmi_get_gpu_asic_info(h)) or {}  # noqa: B023
            board = self._call(lambda: self.mod.amdsmi_get_gpu_board_info(h)) or {}  # noqa: B023
            vram = self._call(lambda: self.mod.amdsmi_get_gpu_vram_usage(h)) or {}  # noqa: B023
            name = _text(asic.get("market_name")) or _text(board.get("product_name"))
            # no power limit: amdsmi's `power_limit` is W in some releases and µW in others
            out.append(AmdCard(bdf, name, _num(vram.get("vram_total")), None))
        return out

    def sample(self, pci_bus_id: str) -> AmdSample:
        h = self.handles.get(pci_bus_id)
        if h is None:
            return AmdSample(None, None, None)
        vram = self._call(lambda: self.mod.amdsmi_get_gpu_vram_usage(h)) or {}
        power = self._call(lambda: self.mod.amdsmi_get_power_info(h)) or {}
        energy = self._call(lambda: self.mod.amdsmi_get_energy_count(h)) or {}
        # the power field was renamed over ROCm releases; "N/A" where a card lacks it
        watts = next((v for k in ("socket_power", "average_socket_power", "current_socket_power")
                      if (v := _num(power.get(k))) is not None), None)
        ticks = _num(energy.get("energy_accumulator", energy.get("power")))  # "power" before ROCm 6.1
        res_uj = _num(energy.get("counter_resolution"))
        joules = ticks * res_uj / 1e6 if ticks is not None and res_uj else None
        return AmdSample(_num(vram.get("vram_used")), watts, joules)

    def close(self) -> None:
        self._call(self.mod.amdsmi_shut_down)


class _Sysfs(AmdSource):
    name = "amdgpu-sysfs"

    def __init__(self, root: Path) -> None:
        self.devices: dict[str, Path] = {}
        for card in sorted((root / "class" / "drm").glob("card[0-9]*")):
            dev = card / "device"
            if "-" in card.name or _read(dev / "vendor") != AMD_VENDOR:
                continue  # connectors (card0-DP-1) and other vendors' cards
            bdf = norm_pci(dev.resolve().name)
            if bdf and bdf not in self.devices:
                self.devices[bdf] = dev

    def _hwmon(self, dev: Path, *names: str) -> float | None:
        for mon in sorted((dev / "hwmon").glob("hwmon*")):
            for name in names:
                if (v := _num(_read(mon / name))) is not None:
                    return v
        return None

    def cards(self) -> list[AmdCard]:
        out = []
        for bdf, dev in self.devices.items():
            total = _num(_read(dev / "mem_info_vram_total"))
            cap = self._hwmon(dev, "power1_cap")
            out.append(AmdCard(bdf, _read(dev / "product_name") or None,
                               round(total / MIB, 1) if total is not None else None,
                               round(cap / 1e6, 1) if cap is not None else None))
        return out

    def sample(self, pci_bus_id: str) -> AmdSample:
        dev = self.devices.get(pci_bus_id)
        if dev is None:
            return AmdSample(None, None, None)
        used = _num(_read(dev / "mem_info_vram_used"))
        uw = self._hwmon(dev, "power1_average", "power1_input")
        uj = self._hwmon(dev, "energy1_input")
        return AmdSample(used / MIB if used is not None else None, uw / 1e6 if uw is not None else None,
                         uj / 1e6 if uj is not None else None)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _num(value: Any) -> float | None:
    """A number from a sysfs file or an amdsmi field; None for "N/A", empty or anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    s = str(value).strip() if value is not None else ""
    return s if s and s.upper() != "N/A" else None
