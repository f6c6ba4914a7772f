"""Host and GPU facts, and a sampler thread for VRAM, power, energy and the server's RSS during a run.

NVML is reached through nvidia-ml-py's `pynvml` module. Every public function takes an `nvml` argument
(a module-like object): None imports the real one, tests pass a fake. A host without the NVIDIA driver
gives no GPUs and no error.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, TypeVar

from collector.records.schema import CpuInfo, GpuInfo, Host

T = TypeVar("T")
MIB = 1024 * 1024
NVML_CLOCK_MEM = 2  # pynvml.NVML_CLOCK_MEM; a fake module need not define it


def load_nvml() -> ModuleType | None:
    """The pynvml module of nvidia-ml-py, or None if it is not installed."""
    with warnings.catch_warnings():
        # the deprecated `pynvml` PyPI package, if also installed, warns on import; the module is the same
        warnings.filterwarnings("ignore", message=".*pynvml package is deprecated.*", category=FutureWarning)
        try:
            import pynvml
        except ImportError:
            return None
    return pynvml


def probe_host(nvml: Any = None, *, server: Path | None = None, amd: Any = None) -> Host:
    """CPU model, physical cores and logical threads, RAM (MiB), OS, GPUs; the host name only as a hash.

    With `server` (a llama-server), the GPUs are the devices it lists (`--list-devices`), whatever the vendor,
    enriched by NVML and by AMD's amdsmi or sysfs (`amd`: an amdsmi-like module, tests pass a fake); without it,
    or when that build cannot list devices, the GPUs NVML sees (collector.host.gpus)."""
    cpuinfo = _read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.split(":", 1)[0].strip() in ("model name", "Hardware", "cpu model")), None)
    cores = {(_block_value(b, "physical id"), _block_value(b, "core id"))
             for b in cpuinfo.split("\n\n") if _block_value(b, "core id") is not None}
    threads = os.cpu_count()
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), None)
    return Host(
        cpu=CpuInfo(model=model or platform.processor() or None, cores=len(cores) or threads, threads=threads),
        ram_total_mib=round(mem_kib / 1024, 1) if mem_kib else None,
        os=f"{platform.system()} {platform.release()}".strip() or None,
        hostname_hash=hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12],
        gpus=_gpus(nvml, server, amd),
    )


def _gpus(nvml: Any, server: Path | None, amd: Any) -> list[GpuInfo]:
    from collector.host.amdgpu import open_amd
    from collector.host.gpus import host_gpus
    from collector.llama.devices import list_devices

    nvidia = probe_gpus(nvml)
    listed = list_devices(server) if server is not None else None
    if listed is None:
        return nvidia
    src = open_amd(amd)
    try:
        cards = src.cards() if src is not None else []
    finally:
        if src is not None:
            src.close()
    return host_gpus(listed, nvidia, cards, src.name if src is not None else None)


def probe_gpus(nvml: Any = None) -> list[GpuInfo]:
    """Facts of every NVIDIA GPU NVML sees; [] when NVML or the driver is missing (a CPU-only host).

    Units: vram_total_mib in MiB; power_limit_w in W (NVML gives mW); mem_clock_max_mhz in MHz;
    mem_bandwidth_gbps in GB/s = bus width [bits] / 8 × max memory clock [MHz] × 2 (double data rate) / 1000.
    NVML reports the memory clock at half the data rate for GDDR and HBM alike: an RTX 4090 (384-bit,
    10501 MHz) gives 1008 GB/s, an H100 SXM (5120-bit, 2619 MHz) 3352 GB/s, matching the datasheets.
    """
    nv = _start(nvml)
    if nv is None:
        return []
    try:
        driver = _opt(nv, lambda: _str(nv.nvmlSystemGetDriverVersion()))
        cuda = _opt(nv, lambda: cuda_version(nv.nvmlSystemGetCudaDriverVersion()))
        return [_gpu(nv, i, driver, cuda) for i in range(nv.nvmlDeviceGetCount())]
    except nv.NVMLError:
        return []  # a driver that answers init but not the device count: treat as no usable GPU
    finally:
        _shutdown(nv)


def free_vram_mib(nvml: Any = None) -> float | None:
    """Free memory of every NVIDIA GPU together (MiB) as NVML reports it now; None without NVML or a GPU."""
    nv = _start(nvml)
    if nv is None:
        return None
    try:
        free = [nv.nvmlDeviceGetMemoryInfo(nv.nvmlDeviceGetHandleByIndex(i)).free
                for i in range(nv.nvmlDeviceGetCount())]
    except nv.NVMLError:
        return None
    finally:
        _shutdown(nv)
    return sum(free) / MIB if free else None


def cuda_version(value: int) -> str:
    """NVML's CUDA driver version integer (12040) as "12.4"."""
    return f"{value // 1000}.{value % 1000 // 10}"


def mem_bandwidth_gbps(bus_width_bits: int | None, mem_clock_max_mhz: int | None) -> float | None:
    """Peak memory bandwidth in GB/s from bus width and NVML's max memory clock (see probe_gpus)."""
    if not bus_width_bits or not mem_clock_max_mhz:
        return None
    return round(bus_width_bits / 8 * mem_clock_max_mhz * 2 / 1000, 1)


def _gpu(nv: Any, index: int, driver: str | None, cuda: str | None) -> GpuInfo:
    h = nv.nvmlDeviceGetHandleByIndex(index)
    bus = _opt(nv, lambda: int(nv.nvmlDeviceGetMemoryBusWidth(h)))
    clock = _opt(nv, lambda: int(nv.nvmlDeviceGetMaxClockInfo(h, getattr(nv, "NVML_CLOCK_MEM", NVML_CLOCK_MEM))))
    power_mw = _opt(nv, lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
    cc = _opt(nv, lambda: nv.nvmlDeviceGetCudaComputeCapability(h))
    total = _opt(nv, lambda: nv.nvmlDeviceGetMemoryInfo(h).total)
    return GpuInfo(
        name=_opt(nv, lambda: _str(nv.nvmlDeviceGetName(h))) or "unknown NVIDIA GPU",
        uuid=_opt(nv, lambda: _str(nv.nvmlDeviceGetUUID(h))), index=index,
        pci_bus_id=_opt(nv, lambda: _str(nv.nvmlDeviceGetPciInfo(h).busId)),
        vram_total_mib=round(total / MIB, 1) if total is not None else None,
        driver=driver, cuda=cuda, compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
        pcie_gen_max=_opt(nv, lambda: int(nv.nvmlDeviceGetMaxPcieLinkGeneration(h))),
        pcie_width_max=_opt(nv, lambda: int(nv.nvmlDeviceGetMaxPcieLinkWidth(h))),
        power_limit_w=round(power_mw / 1000, 1) if power_mw is not None else None,
        mem_bus_width_bits=bus, mem_clock_max_mhz=clock, mem_bandwidth_gbps=mem_bandwidth_gbps(bus, clock),
    )  # backend stays None: NVML cannot tell whether llama.cpp drives this GPU through CUDA or Vulkan


def _start(nvml: Any) -> Any:
    nv = load_nvml() if nvml is None else nvml
    if nv is None:
        return None
    try:
        nv.nvmlInit()
    except nv.NVMLError:
        return None  # LibraryNotFound / DriverNotLoaded: a CPU-only host
    return nv


def _shutdown(nv: Any) -> None:
    try:
        nv.nvmlShutdown()
    except nv.NVMLError:
        pass


def _opt(nv: Any, call: Callable[[], T]) -> T | None:
    """An optional field: NotSupported, NoPermission, ... become None instead of failing the probe."""
    try:
        return call()
    except nv.NVMLError:
        return None


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _block_value(block: str, key: str) -> str | None:
    for line in block.splitlines():
        k, _, v = line.partition(":")
        if k.strip() == key:
            return v.strip()
    return None


@dataclass
class SamplerResult:
    """What the sampler saw over one run. MiB, W, J, s; None where not measurable here."""

    vram_peak_mib: list[float] | None  # per sampled GPU: peak of NVML "used" memory (all processes)
    power_w_mean: float | None  # mean over samples of the summed power of the sampled GPUs
    energy_j: float | None  # summed over the sampled GPUs
    energy_method: str | None  # "energy_counter" (NVML total-energy delta) or "mean_power_x_time"
    host_rss_peak_mib: float | None  # peak VmRSS of the pid plus its descendants
    seconds: float
    n_samples: int = 0
    cpu_other_pct: float | None = None  # mean busy CPU time of all other processes, % of every core together
    cpu_other_pct_max: float | None = None  # the busiest sampling interval
    gpu_other_processes: int | None = None  # most other compute processes seen on the sampled GPUs at once


class Sampler:
    """A background thread sampling GPU memory and power and a process tree's RSS every `interval_s`.

    Energy comes from the difference of NVML's total-energy counter between start() and stop() (sampling
    power misses bursts); only where the counter is unsupported does it fall back to mean power × time.
    Use start()/stop() or `with Sampler(pid) as s: ...` and then `s.result`.
    """

    def __init__(self, pid: int | None, gpu_indices: list[int] | None = None, nvml: Any = None,
                 interval_s: float = 0.2, *, gpus: list[GpuInfo] | None = None, amd: Any = None) -> None:
        if gpus is not None:  # the GPUs a run used: NVML's by index, AMD's by PCI id, the rest unsampled
            from collector.host.gpus import sampled

            gpu_indices, self._amd_pci = sampled(gpus)
        else:
            self._amd_pci = []
        self.pid, self.gpu_indices, self.interval_s = pid, gpu_indices, interval_s
        self._nvml_arg, self._amd_arg = nvml, amd
        self._amd: Any = None
        self._nv: Any = None
        self._handles: list[Any] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._vram_peak: list[float] = []
        self._power_sum_w = 0.0
        self._power_n = 0
        self._rss_peak_kib: int | None = None
        self._energy_start: list[float] | None = None
        self._t0: float | None = None
        self._n = 0
        self._cpu_last: tuple[int, int, int] | None = None  # (total, busy, ours) jiffies at the last sample
        self._cpu_other: list[float] = []
        self._gpu_others: int | None = None
        self.result: SamplerResult | None = None

    def start(self) -> Sampler:
        self._nv = _start(self._nvml_arg)
        if self._nv is not None:
            try:
                indices = self.gpu_indices if self.gpu_indices is not None else range(self._nv.nvmlDeviceGetCount())
                self._handles = [self._nv.nvmlDeviceGetHandleByIndex(i) for i in indices]
            except self._nv.NVMLError:
                self._handles = []
            self._vram_peak = [0.0] * len(self._handles)
        if self._amd_pci:
            from collector.host.amdgpu import open_amd

            self._amd = open_amd(self._amd_arg)
            self._amd_pci = self._amd_pci if self._amd is not None else []
            self._vram_peak += [0.0] * len(self._amd_pci)
        if self._handles or self._amd_pci:
            self._energy_start = self._energy()
        self._t0 = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="collector-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> SamplerResult:
        if self.result is not None:
            return self.result
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        seconds = round(time.monotonic() - self._t0, 3) if self._t0 is not None else 0.0
        energy_end = self._energy() if self._handles or self._amd_pci else None
        if self._nv is not None:
            _shutdown(self._nv)
        if self._amd is not None:
            self._amd.close()
        power = self._power_sum_w / self._power_n if self._power_n else None
        if self._energy_start is not None and energy_end is not None:
            energy, method = sum(e - s for s, e in zip(self._energy_start, energy_end)) / 1000, "energy_counter"
        elif power is not None:
            energy, method = power * seconds, "mean_power_x_time"
        else:
            energy, method = None, None
        self.result = SamplerResult(
            vram_peak_mib=[round(v, 1) for v in self._vram_peak] if self._handles or self._amd_pci else None,
            power_w_mean=round(power, 2) if power is not None else None,
            energy_j=round(energy, 3) if energy is not None else None, energy_method=method,
            host_rss_peak_mib=round(self._rss_peak_kib / 1024, 1) if self._rss_peak_kib is not None else None,
            seconds=seconds, n_samples=self._n,
            cpu_other_pct=round(sum(self._cpu_other) / len(self._cpu_other), 1) if self._cpu_other else None,
            cpu_other_pct_max=round(max(self._cpu_other), 1) if self._cpu_other else None,
            gpu_other_processes=self._gpu_others)
        return self.result

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            self._n += 1
            nv = self._nv
            watts = 0.0
            power_ok = bool(self._handles or self._amd_pci)
            for i, h in enumerate(self._handles):
                used = _opt(nv, lambda: nv.nvmlDeviceGetMemoryInfo(h).used)  # noqa: B023 (called at once)
                if used is not None:
                    self._vram_peak[i] = max(self._vram_peak[i], used / MIB)
                mw = _opt(nv, lambda: nv.nvmlDeviceGetPowerUsage(h))  # noqa: B023 (called at once)
                if mw is None:
                    power_ok = False
                else:
                    watts += mw / 1000
            for j, pci in enumerate(self._amd_pci):
                amd = self._amd.sample(pci)
                if amd.vram_used_mib is not None:
                    k = len(self._handles) + j
                    self._vram_peak[k] = max(self._vram_peak[k], amd.vram_used_mib)
                if amd.power_w is None:
                    power_ok = False
                else:
                    watts += amd.power_w
            if power_ok:
                self._power_sum_w += watts
                self._power_n += 1
            tree = process_tree(self.pid) if self.pid is not None else []
            if tree:
                rss = sum(filter(None, (_status_kib(p, "VmRSS") for p in tree)))
                self._rss_peak_kib = max(self._rss_peak_kib or 0, rss)
            self._sample_cpu(tree)
            if self._handles:
                others: set[int] = set()
                for h in self._handles:
                    procs = _opt(nv, lambda: nv.nvmlDeviceGetComputeRunningProcesses(h)) or []  # noqa: B023
                    others |= {int(p.pid) for p in procs} - set(tree)
                self._gpu_others = max(self._gpu_others or 0, len(others))

    def _sample_cpu(self, tree: list[int]) -> None:
        """Busy CPU time of everything except the measured tree and this process, since the last sample."""
        stat = _read("/proc/stat").split("\n", 1)[0].split()
        if len(stat) < 5 or stat[0] != "cpu":
            return
        ticks = [int(x) for x in stat[1:]]
        total, idle = sum(ticks[:8]), ticks[3] + ticks[4]
        ours = sum(_cpu_ticks(p) for p in [*tree, os.getpid()])
        now = (total, total - idle, ours)
        if self._cpu_last is not None and now[0] > self._cpu_last[0]:
            d_total, d_busy, d_ours = (a - b for a, b in zip(now, self._cpu_last))
            self._cpu_other.append(max(0.0, (d_busy - d_ours) / d_total * 100))
        self._cpu_last = now

    def _energy(self) -> list[float] | None:
        """Every sampled GPU's energy counter (mJ), or None if any of them lacks one (pre-Volta, most AMD sysfs)."""
        values: list[float | None] = [
            _opt(self._nv, lambda: int(self._nv.nvmlDeviceGetTotalEnergyConsumption(h)))  # noqa: B023
            for h in self._handles]
        for pci in self._amd_pci:
            joules = self._amd.sample(pci).energy_j
            values.append(joules * 1000 if joules is not None else None)
        known = [v for v in values if v is not None]
        return known if values and len(known) == len(values) else None


def process_tree(pid: int) -> list[int]:
    """The pid and all its live descendants ([] once the process is gone)."""
    seen: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in seen or not os.path.exists(f"/proc/{p}"):
            continue
        seen.append(p)
        todo += _children(p)
    return seen


def tree_rss_kib(pid: int) -> int | None:
    """VmRSS (KiB) of a process and all its descendants; None once the process is gone."""
    tree = process_tree(pid)
    return sum(filter(None, (_status_kib(p, "VmRSS") for p in tree))) if tree else None


def _status_kib(pid: int, key: str) -> int | None:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def _cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 when it is gone."""
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    return int(fields[11]) + int(fields[12]) if len(fields) > 12 else 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        kids += [int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split()]
    return kids
