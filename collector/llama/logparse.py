"""Read what llama.cpp actually did from a `-lv 4` llama-server log: placement and memory (MiB).

Exact line formats: ref/llama-cpp.md §3. Fit trial loads and `-lv 5` repeat the load lines, so for every
single-valued fact the LAST occurrence wins; per-device buffer sizes are also taken from the last load.
Models with sliding-window attention (gemma-3) get two KV caches, non-SWA and SWA: every cache of the last
context is kept and `kv_cache` is their sum (tests/fixtures/logs/gemma3-270m-cpu-swa.log, a real log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from collector.records.schema import BreakdownRow, KvCache, Memory, Placement

# "0.00.189.901 I " (minutes.seconds.ms.us, level) and the optional "cmn  common_param: " tag.
_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ [IWEDC] ")
_OFFLOADED = re.compile(r"load_tensors: offloaded (\d+)/(\d+) layers to GPU")
_MODEL_BUF = re.compile(r"load_tensors:\s+(\S+) model buffer size =\s*([\d.]+) MiB")
_KV_BUF = re.compile(r"llama_kv_cache:\s+(\S+) KV buffer size =\s*([\d.]+) MiB")
_KV_SIZE = re.compile(r"llama_kv_cache: size =\s*([\d.]+) MiB \(\s*(\d+) cells,\s*(\d+) layers.*?"
                      r"K \((\w+)\):.*?V \((\w+)\)")
_KV_ISWA = re.compile(r"llama_kv_cache_iswa: creating\s+(non-SWA|SWA) KV cache")
_N_SWA = re.compile(r"print_info: (n_swa|is_swa_any)\s+=\s*(\d+)")
_CTX_BUF = re.compile(r"(?:llama_context|sched_reserve):\s+(\S+)\s+(output|compute) buffer size =\s*([\d.]+) MiB")
_CTX_PARAM = re.compile(r"llama_context: (n_ctx|n_ctx_seq|n_seq_max|flash_attn)\s+=\s*(\S+)")
_FA_RESOLVED = re.compile(r"resolve_fused_ops: Flash Attention (enabled|not supported)")
_SLOTS = re.compile(r"initializing, n_slots = (\d+), n_ctx_slot = (\d+)")
_DEVICE = re.compile(r"^\s*- (\S+)\s*: (.+?) \((\d+) MiB, (\d+) MiB free\)")
_FIT = re.compile(r"(common_params_fit_impl|common_fit_params): (.+)$")
_TABLE = re.compile(r"(?:common_)?memory_breakdown_print: \|(.*)\|\s*$")
_NUM = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class LogFacts:
    """Everything parsed from one server log."""

    placement: Placement = field(default_factory=Placement)
    memory: Memory = field(default_factory=Memory)
    build_line: str | None = None


def _strip(line: str) -> str:
    line = _PREFIX.sub("", line.rstrip("\n"))
    return re.sub(r"^cmn\s+\S+:\s", "", line)


def parse_breakdown(lines: list[str]) -> list[BreakdownRow]:
    """The LAST memory breakdown table (exit table) as rows; [] when none was printed."""
    tables: list[list[BreakdownRow]] = []
    for raw in lines:
        m = _TABLE.search(raw)
        if not m:
            continue
        cells = m.group(1).split("|")
        if len(cells) < 2:
            continue
        name, rest = cells[0].strip(), cells[1]
        if name.startswith("memory breakdown"):
            tables.append([])
            continue
        if not tables or not name.startswith("- "):
            continue
        nums = [float(x) for x in _NUM.findall(rest)]
        label = name[2:].strip()
        # a device row: total free = self + (model + ctx + compute) + unaccounted
        if "=" in rest and "(" in rest and len(nums) >= 7:
            row = BreakdownRow(name=label, total=nums[0], free=nums[1], self_=nums[2], model=nums[3],
                               context=nums[4], compute=nums[5], unaccounted=nums[6])
        elif len(nums) >= 4:  # host / buffer type: self = model + context + compute
            row = BreakdownRow(name=label, self_=nums[0], model=nums[1], context=nums[2], compute=nums[3])
        else:
            continue
        tables[-1].append(row)
    return tables[-1] if tables else []


def parse_server_log(text: str) -> LogFacts:
    """Parse a -lv 4 llama-server log; facts not found stay None (never guessed)."""
    facts = LogFacts()
    p, mem = facts.placement, facts.memory
    lines = text.splitlines()
    model_bufs: dict[str, float] = {}
    kv_bufs: dict[str, float] = {}
    compute_bufs: dict[str, float] = {}
    devices: list[str] = []
    fit: list[str] = []
    caches: list[KvCache] = []
    swa: bool | None = None
    n_swa, swa_any = None, False
    for raw in lines:
        line = _strip(raw)
        if "load_tensors: loading model tensors" in line or "llama_model_loader: loaded meta data" in line:
            model_bufs = {}  # a new (final or trial) load starts: keep only the last one's buffers
        if "llama_context: n_seq_max" in line:
            kv_bufs, compute_bufs, caches, swa = {}, {}, [], None  # a new context: keep only the last one's
        if m := _OFFLOADED.search(line):
            p.gpu_layers, p.total_layers = int(m.group(1)), int(m.group(2))
        elif m := _MODEL_BUF.search(line):
            model_bufs[m.group(1)] = float(m.group(2))
        elif m := _KV_ISWA.search(line):
            swa = m.group(1) == "SWA"
        elif m := _KV_BUF.search(line):
            kv_bufs[m.group(1)] = round(kv_bufs.get(m.group(1), 0.0) + float(m.group(2)), 2)
        elif m := _KV_SIZE.search(line):
            caches.append(KvCache(swa=swa, size=float(m.group(1)), cells=int(m.group(2)), layers=int(m.group(3)),
                                  type_k=m.group(4), type_v=m.group(5)))
        elif m := _N_SWA.search(line):
            if m.group(1) == "n_swa":
                n_swa = int(m.group(2))
            else:
                swa_any = m.group(2) == "1"
        elif m := _CTX_BUF.search(line):
            if m.group(2) == "compute":
                compute_bufs[m.group(1)] = float(m.group(3))
        elif m := _CTX_PARAM.search(line):
            key, val = m.group(1), m.group(2)
            if key == "flash_attn":
                p.flash_attn = {"enabled": True, "disabled": False}.get(val, p.flash_attn)
            elif val.isdigit():
                setattr(p, "n_slots" if key == "n_seq_max" else key, int(val))
        elif m := _FA_RESOLVED.search(line):
            p.flash_attn = m.group(1) == "enabled"
        elif m := _SLOTS.search(line):
            p.n_slots = int(m.group(1))
        elif m := _FIT.search(line):
            fit.append(f"{m.group(1)}: {m.group(2).strip()}")
        elif "common_params_print_info: build" in line:
            facts.build_line = line.split("common_params_print_info: ", 1)[1].strip()
        elif line.startswith("system_info:") or "device_info:" in line:
            if "device_info:" in line:
                devices = []
        elif (m := _DEVICE.match(line)) and "common_param" in raw:
            devices.append(f"{m.group(1)}: {m.group(2)} ({m.group(3)} MiB)")
    p.fit = fit
    p.devices = devices
    p.n_swa = n_swa if swa_any else None
    if caches:
        mem.kv_caches = caches
        mem.kv_cache = round(sum(c.size for c in caches), 2)
        p.kv_type_k, p.kv_type_v = caches[0].type_k, caches[0].type_v
    mem.model_buffers, mem.kv_buffers, mem.compute_buffers = model_bufs, kv_bufs, compute_bufs
    mem.breakdown = parse_breakdown(lines)
    return facts

