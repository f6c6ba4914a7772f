"""GPUs from llama.cpp's device list, vendor facts from NVML / amdsmi / amdgpu sysfs, and the GPUs a run used.

The device lists are llama-server's own output captured on this machine (tests/fixtures/devices/); NVIDIA and AMD
GPUs cannot exist here, so their libraries are the fakes of tests/fakes.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.host.amdgpu import norm_pci, open_amd
from collector.host.gpus import as_used, host_gpus, sampled, software_host, used_devices
from collector.host.hardware import Sampler, probe_gpus
from collector.llama.devices import buffer_device, is_software, parse_device_list
from collector.records.schema import GpuInfo, Host, LlamaDevice, Memory, Placement
from collector.records.store import device_slug
from fakes import R9700, RTX_4090, FakeAmdSmi, FakeNVML, amdgpu_sysfs

FIXTURES = Path(__file__).parents[1] / "fixtures" / "devices"


def _body(name: str) -> str:
    """A captured output without its provenance header (lines starting with '# ')."""
    return "".join(line for line in (FIXTURES / name).read_text().splitlines(keepends=True)
                   if not line.startswith("# "))


def test_device_lists_as_llama_server_prints_them() -> None:
    assert parse_device_list(_body("list-devices-cpu-b11434.txt")) == []  # "(none)": a CPU build
    [dev] = parse_device_list(_body("list-devices-vulkan-llvmpipe-b11434.txt")) or []
    assert (dev.name, dev.backend, dev.description) == ("Vulkan0", "Vulkan", "llvmpipe (LLVM 15.0.6, 256 bits)")
    assert dev.memory_total_mib and dev.memory_free_mib and dev.memory_free_mib <= dev.memory_total_mib
    assert is_software(dev.description) and not is_software("AMD Radeon RX 7900 XTX (RADV NAVI31)")
    assert parse_device_list("error: invalid argument: --list-devices\n") is None  # a build without the flag
    assert parse_device_list("") is None


def test_two_devices_of_one_kind_are_a_set() -> None:
    listed = parse_device_list(_body("list-devices-vulkan-2x-llvmpipe-b11434.txt")) or []
    gpus = host_gpus(listed, [], [])
    assert [(g.llama_device, g.software, g.telemetry) for g in gpus] == [("Vulkan0", True, None),
                                                                         ("Vulkan1", True, None)]
    assert device_slug(Host(gpus=gpus)) == "2x-llvmpipe"


def test_buffer_names_to_devices() -> None:
    assert [buffer_device(b) for b in ("Vulkan0", "CUDA1", "ROCm0", "MTL0_Mapped", "CPU", "CPU_Mapped",
                                       "CPU_REPACK", "CUDA_Host", "Vulkan_Host", "RPC[x:1]")] == [
        "Vulkan0", "CUDA1", "ROCm0", "MTL0", None, None, None, None, None, None]


def _listed(*devs: tuple[str, str, str | None]) -> list[LlamaDevice]:
    from collector.llama.devices import backend_of

    return [LlamaDevice(name=n, backend=backend_of(n), description=d, pci_bus_id=p, memory_total_mib=24000.0)
            for n, d, p in devs]


def test_nvidia_devices_take_nvml_facts_by_pci_id_then_name() -> None:
    nv = probe_gpus(FakeNVML([RTX_4090, {**RTX_4090, "uuid": "GPU-cccc", "bus": "00000000:02:00.0"}]))
    # llama.cpp lists the second card first (CUDA's fastest-first order): the PCI id, not the order, decides
    gpus = host_gpus(_listed(("CUDA0", "NVIDIA GeForce RTX 4090", "0000:02:00.0"),
                             ("CUDA1", "NVIDIA GeForce RTX 4090", "0000:01:00.0")), nv, [])
    assert [(g.llama_device, g.uuid, g.backend, g.telemetry) for g in gpus] == [
        ("CUDA0", "GPU-cccc", "CUDA", "nvml"), ("CUDA1", "GPU-aaaa", "CUDA", "nvml")]
    assert gpus[0].vram_total_mib == 24564 and gpus[0].power_limit_w == 450  # NVML's exact figures
    # Vulkan on an NVIDIA card names no PCI id before the run: matched by name
    [g] = host_gpus(_listed(("Vulkan0", "NVIDIA GeForce RTX 4090", None)), nv[:1], [])
    assert (g.llama_device, g.backend, g.uuid, g.index) == ("Vulkan0", "Vulkan", "GPU-aaaa", 0)
    assert device_slug(Host(gpus=gpus)) == "2x-rtx-4090"


def test_a_gpu_llama_cpp_does_not_list_is_kept_apart() -> None:
    nv = probe_gpus(FakeNVML([RTX_4090]))
    [g] = host_gpus([], nv, [])  # a CPU build on an NVIDIA host
    assert g.llama_device is None and g.telemetry == "nvml" and g.name == "NVIDIA GeForce RTX 4090"


def test_amd_devices_from_amdsmi_and_sysfs(tmp_path: Path) -> None:
    smi = FakeAmdSmi([R9700, {**R9700, "bdf": "0000:04:00.0"}], power_key="average_socket_power")
    src = open_amd(smi)
    assert src is not None and src.name == "amdsmi"
    cards = src.cards()
    assert [(c.pci_bus_id, c.name, c.vram_total_mib, c.power_limit_w) for c in cards] == [
        ("0000:03:00.0", "AMD Radeon AI PRO R9700", 32624.0, None), ("0000:04:00.0", "AMD Radeon AI PRO R9700",
                                                                     32624.0, None)]
    s = src.sample("0000:03:00.0")
    assert (s.vram_used_mib, s.power_w) == (1500.0, 180.0) and s.energy_j == pytest.approx(1_001_000 * 15.3 / 1e6)
    # Vulkan's names carry the driver and no PCI id: the order decides, and the slug drops the driver part
    gpus = host_gpus(_listed(("Vulkan0", "AMD Radeon AI PRO R9700 (RADV GFX1201)", None),
                             ("Vulkan1", "AMD Radeon AI PRO R9700 (RADV GFX1201)", None)), [], cards, src.name)
    assert [(g.llama_device, g.pci_bus_id, g.telemetry, g.vram_total_mib) for g in gpus] == [
        ("Vulkan0", "0000:03:00.0", "amdsmi", 32624.0), ("Vulkan1", "0000:04:00.0", "amdsmi", 32624.0)]
    assert device_slug(Host(gpus=gpus)) == "2x-ai-pro-r9700"
    src.close()
    assert smi.calls["shutdown"] == 1

    root = amdgpu_sysfs(tmp_path / "sys", [
        {"bdf": "0000:03:00.0", "vram_total_b": 17163091968, "vram_used_b": 524288000, "power1_average": 41000000,
         "power1_cap": 303000000},
        {"bdf": "0000:00:02.0", "vendor": "0x8086"}])  # an Intel iGPU beside it: not an amdgpu card
    src = open_amd(FakeAmdSmi([], init_error=FakeAmdSmi.AmdSmiLibraryException("no driver")), root)
    assert src is not None and src.name == "amdgpu-sysfs"
    [card] = src.cards()
    assert (card.pci_bus_id, card.name, card.vram_total_mib, card.power_limit_w) == ("0000:03:00.0", None, 16368.0,
                                                                                     303.0)
    s = src.sample("0000:03:00.0")
    assert (s.vram_used_mib, s.power_w, s.energy_j) == (500.0, 41.0, None)  # no energy1_input: unknown
    assert open_amd(FakeAmdSmi([], init_error=RuntimeError("x")), tmp_path / "empty") is None


def test_amd_telemetry_in_the_sampler(tmp_path: Path) -> None:
    smi = FakeAmdSmi([R9700])
    gpu = GpuInfo(name="AMD Radeon AI PRO R9700", llama_device="ROCm0", pci_bus_id="0000:03:00.0",
                  telemetry="amdsmi")
    r = Sampler(None, gpus=[gpu], nvml=FakeNVML([]), amd=smi, interval_s=0.01).start().stop()
    assert r.vram_peak_mib == [1500.0] and r.power_w_mean == 180.0
    assert r.energy_method == "energy_counter" and r.energy_j and r.energy_j > 0
    assert smi.calls["shutdown"] == 1
    assert sampled([gpu, GpuInfo(name="llvmpipe", llama_device="Vulkan0", software=True)]) == ([], ["0000:03:00.0"])


def _host(*gpus: GpuInfo) -> Host:
    return Host(gpus=list(gpus))


LLVMPIPE = GpuInfo(name="llvmpipe (LLVM 15.0.6, 256 bits)", backend="Vulkan", llama_device="Vulkan0", software=True)


def test_the_record_keeps_the_gpus_llama_cpp_used() -> None:
    full = Memory(model_buffers={"Vulkan0": 92.1, "CPU_Mapped": 28.1}, kv_buffers={"Vulkan0": 22.5})
    host, notes = as_used(_host(LLVMPIPE), Placement(gpu_layers=31, total_layers=31), full)
    assert host.gpus == [LLVMPIPE] and device_slug(host) == "llvmpipe" and software_host(host)
    assert len(notes) == 1 and "software device" in notes[0] and "never published as a GPU's speed" in notes[0]
    # -ngl 0: the device was listed, but holds nothing: a CPU record that says why
    cpu = Memory(model_buffers={"CPU_Mapped": 120.2}, kv_buffers={"CPU": 22.5}, compute_buffers={"Vulkan0": 5.0})
    host, notes = as_used(Host(gpus=[LLVMPIPE]), Placement(gpu_layers=0, total_layers=31), cpu)
    assert host.gpus == [] and device_slug(host).startswith("cpu-")
    assert any("Vulkan0 (llvmpipe" in n and "holds no layer" in n for n in notes)
    assert notes[-1] == "llama.cpp used no GPU of this host: filed as a CPU record"
    # two GPUs, weights on one (--device CUDA1): the other is named as unused
    a = GpuInfo(name="NVIDIA GeForce RTX 3060", llama_device="CUDA0")
    b = a.model_copy(update={"llama_device": "CUDA1"})
    host, notes = as_used(_host(a, b), Placement(gpu_layers=29), Memory(model_buffers={"CUDA1": 4000.0}))
    assert host.gpus == [b] and len(notes) == 1 and notes[0].startswith("CUDA0 ")
    # a load that failed says nothing about devices: the host stays as probed
    assert as_used(_host(a, b), Placement(), Memory()) == (_host(a, b), [])
    assert used_devices(Placement(), Memory()) is None


def test_software_records_are_not_published() -> None:
    from collector.publish.rows.frame import build_frames
    from fixtures.records.factory import cpu_host, gpu, model, speed

    m = model("Tiny", "Q4_0", 1000)
    real = speed(cpu_host().model_copy(update={"gpus": [gpu("NVIDIA GeForce RTX 4090")]}), m, {0: 90.0})
    soft = speed(cpu_host().model_copy(update={"gpus": [LLVMPIPE]}), m, {0: 1.3})
    f = build_frames([real, soft])
    assert list(f.records.values()) == [real] and f.rows and all(r.rec is real for r in f.rows)


def test_validate_refuses_software_records_in_a_data_set(tmp_path: Path) -> None:
    from clirun import invoke

    from collector.host.gpus import software_records
    from collector.records.index import load_index
    from collector.records.store import save_record
    from fixtures.records.factory import cpu_host, model, speed

    m = model("Tiny", "Q4_0", 1000)
    save_record(speed(cpu_host(), m, {0: 20.0}), tmp_path)
    assert invoke(["validate", str(tmp_path)])[0] == 0
    path = save_record(speed(cpu_host().model_copy(update={"gpus": [LLVMPIPE]}), m, {0: 1.3}), tmp_path)
    code, out = invoke(["validate", str(tmp_path)])
    assert (code, out) == (1, f"1 of 2 files under {tmp_path} are invalid (listed above)")
    [why] = software_records(load_index(tmp_path).records)  # what validate lists above its last line
    assert why.startswith(f"{path}: measured on a software device (llvmpipe (LLVM 15.0.6, 256 bits)): its speeds")


def test_pci_spellings() -> None:
    assert norm_pci("00000000:01:00.0") == norm_pci("0000:01:00.0") == "0000:01:00.0"
    assert norm_pci("0000:0A:00.0") == "0000:0a:00.0" and norm_pci("unknown id") is None and norm_pci(None) is None
