"""Host/GPU facts and the sampler. No NVIDIA GPU exists here, so the GPU path runs on a fake NVML module."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from procs import wait_until

from collector.host.hardware import (
    Sampler,
    _children,
    cuda_version,
    mem_bandwidth_gbps,
    probe_gpus,
    probe_host,
    tree_rss_kib,
)
from fakes import OLD_CARD, RTX_4090, FakeNVML, NVMLError, NVMLError_LibraryNotFound


def test_probe_gpus_fields_units_and_not_supported() -> None:
    nv = FakeNVML([RTX_4090, OLD_CARD])
    gpus = probe_gpus(nv)
    assert [g.index for g in gpus] == [0, 1]
    g = gpus[0]
    assert (g.name, g.uuid, g.pci_bus_id, g.driver, g.cuda) == (
        "NVIDIA GeForce RTX 4090", "GPU-aaaa", "00000000:01:00.0", "550.54.15", "12.4")
    assert (g.vram_total_mib, g.compute_capability, g.pcie_gen_max, g.pcie_width_max) == (24564.0, "8.9", 4, 16)
    assert (g.power_limit_w, g.mem_bus_width_bits, g.mem_clock_max_mhz) == (450.0, 384, 10501)
    assert g.mem_bandwidth_gbps == pytest.approx(1008.1, abs=0.1)  # the RTX 4090 datasheet says 1008 GB/s
    old = gpus[1]
    assert old.power_limit_w is None and old.name == "Tesla P40"  # NotSupported -> None, the rest still read
    assert old.pci_bus_id == "00000000:02:00.0"
    assert nv.calls["init"] == nv.calls["shutdown"] == 1


def test_bandwidth_and_cuda_formulas() -> None:
    assert mem_bandwidth_gbps(5120, 2619) == pytest.approx(3352.3, abs=0.1)  # H100 SXM: 3.35 TB/s
    assert mem_bandwidth_gbps(None, 10501) is None and mem_bandwidth_gbps(384, 0) is None
    assert (cuda_version(12040), cuda_version(13000), cuda_version(11080)) == ("12.4", "13.0", "11.8")


def test_no_driver_is_a_cpu_only_host() -> None:
    nv = FakeNVML([RTX_4090], init_error=NVMLError_LibraryNotFound("NVML Shared Library Not Found"))
    assert probe_gpus(nv) == []
    assert nv.calls["shutdown"] == 0  # nothing to shut down after a failed init


def test_failing_device_count_still_shuts_down() -> None:
    nv = FakeNVML([RTX_4090])
    nv.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(NVMLError("Unknown Error"))  # type: ignore[method-assign]
    assert probe_gpus(nv) == []
    assert nv.calls["shutdown"] == 1


def test_sampler_vram_peak_power_and_energy_counter() -> None:
    nv = FakeNVML([RTX_4090, OLD_CARD])
    with Sampler(None, nvml=nv, interval_s=0.01) as sampler:
        wait_until(lambda: nv.calls["mem0"] >= 3)  # three samples taken (the first at start)
    r = sampler.result
    assert r is not None and r.n_samples >= 4  # and the last one at stop
    assert r.vram_peak_mib == [3000.0, 3001.0]  # the peak, not the last value (2000)
    assert r.power_w_mean == 350.0  # 250 W + 100 W on every sample
    assert (r.energy_j, r.energy_method) == (24.69, "energy_counter")  # 12 345 mJ on each of two GPUs
    assert r.host_rss_peak_mib is None and r.seconds >= 0.02  # two intervals at least
    assert nv.calls["init"] == nv.calls["shutdown"] == 1
    assert sampler.stop() is r  # stopping twice is harmless


def test_sampler_falls_back_to_mean_power_without_energy_counter() -> None:
    nv = FakeNVML([{**RTX_4090, "energy": False}])
    sampler = Sampler(None, gpu_indices=[0], nvml=nv, interval_s=0.01).start()
    wait_until(lambda: nv.calls["mem0"] >= 3)  # three samples taken
    r = sampler.stop()
    assert r.energy_method == "mean_power_x_time"
    assert r.energy_j == pytest.approx(250.0 * r.seconds, rel=1e-3)


def test_sampler_on_a_cpu_only_host() -> None:
    nv = FakeNVML([], init_error=NVMLError_LibraryNotFound())
    r = Sampler(os.getpid(), nvml=nv, interval_s=0.01).start().stop()
    assert (r.vram_peak_mib, r.power_w_mean, r.energy_j, r.energy_method) == (None, None, None, None)
    assert r.host_rss_peak_mib and r.host_rss_peak_mib > 10


def test_sampler_rss_of_a_real_process_tree(tmp_path: Path) -> None:
    # The parent only waits; its child holds 64 MiB. The peak must include the child.
    child = "import time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(3)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    proc = subprocess.Popen([sys.executable, "-c", parent])
    try:
        with Sampler(proc.pid, nvml=FakeNVML([], init_error=NVMLError_LibraryNotFound()), interval_s=0.05) as s:
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline and (tree_rss_kib(proc.pid) or 0) < 70 * 1024:
                time.sleep(0.05)
        assert s.result is not None and s.result.host_rss_peak_mib is not None
        assert s.result.host_rss_peak_mib > 64
    finally:
        for kid in _children(proc.pid):  # only the child this test started, by its id
            os.kill(kid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    assert tree_rss_kib(proc.pid) is None  # a reaped process has no RSS


def test_probe_host_on_this_machine() -> None:
    host = probe_host()  # the real pynvml: no NVIDIA driver here
    assert host.gpus == []
    assert host.cpu.model and host.cpu.cores and host.cpu.threads and host.cpu.threads >= host.cpu.cores
    assert host.ram_total_mib and host.ram_total_mib > 100
    assert host.os and host.os.startswith("Linux ")
    assert host.hostname_hash and re.fullmatch(r"[0-9a-f]{12}", host.hostname_hash)
    assert socket.gethostname() not in host.model_dump_json()


def test_probe_host_with_fake_gpu() -> None:
    assert [g.uuid for g in probe_host(FakeNVML([RTX_4090])).gpus] == ["GPU-aaaa"]


def test_import_hides_the_deprecated_pynvml_package_warning(tmp_path: Path) -> None:
    # The deprecated `pynvml` PyPI package installs an import hook that warns on `import pynvml`; mimic it.
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""\
        import sys, warnings
        class Hook:
            def find_spec(self, name, path=None, target=None):
                if name == "pynvml":
                    warnings.warn("The pynvml package is deprecated. Please install nvidia-ml-py instead.",
                                  FutureWarning, stacklevel=2)
                return None
        sys.meta_path.insert(0, Hook())
        """))
    code = "from collector.host.hardware import load_nvml; assert load_nvml() is not None"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    plain = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", "import pynvml"], env=env,
                           capture_output=True, text=True)
    assert plain.returncode != 0 and "deprecated" in plain.stderr  # the hook really fires
    ours = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-c", code], env=env,
                          capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
