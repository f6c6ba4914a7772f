"""Read what llama.cpp actually did from a llama-server log: placement, devices and memory (MiB).

Exact line formats: ref/llama-cpp.md §3; real logs of every backend: tests/fixtures/logs/real/. A log of a build
older than logbuild.MIN_BUILD is refused (CollectorError), never half-read.

Which load and which context: with `-lv 5` the fit phase's trial loads print full load lines, so everything
before the fit phase's last line ("fitting params to free memory took ...") is dropped. After it, the first model
load and the first context are the target model's; a later load or context belongs to speculative decoding (a
draft model, an MTP head), and its buffers go to `draft_buffers` only. Models with sliding-window attention
(gemma-3) and compressed KV caches (DeepSeek V4) get several KV caches: all of the target context's are kept and
`kv_cache` is their sum. A model split over GGUF files has one model buffer per file: same-named buffers add up.
The memory breakdown is the table printed at exit, after "cleaning up before exit"; the fit phase's tables are
projections of trial loads, not the run.

A model file cannot write facts into its log (collector.llama.logtext): the GGUF's strings that llama.cpp prints
stay inside their lines, every pattern is anchored at the start of a line, the load's facts end at the server's
chat-template message, and a figure that cannot be real is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from collector.llama.logbuild import build_of, check_lines
from collector.llama.logdevices import devices_of
from collector.llama.logmemory import mib, parse_breakdown
from collector.llama.logtext import clean_line, count, load_end, log_lines
from collector.records.schema import KvCache, Memory, Placement

__all__ = ["LogFacts", "clean_line", "parse_breakdown", "parse_server_log"]

_CTX_FN = r"(?:llama_context|llama_kv_cache\w{0,20}|llama_memory_\w{1,20}|sched_reserve|graph_reserve)"
_N = r"(\d{1,15})"  # a count; logtext.count refuses more digits
_OFFLOADED = re.compile(rf"^load_tensors: offloaded {_N}/{_N} layers to GPU")
_MODEL_BUF = re.compile(r"^load_tensors:\s+(\S+) model buffer size =\s*([\d.]+) MiB")
_BUF = re.compile(rf"^{_CTX_FN}:\s+(\S+)\s+(?:(KV|RS|output|compute)|DSV4 \S+ state) buffer size =\s*([\d.]+) MiB")
_KV_SIZE = re.compile(rf"^llama_kv_cache(?:_unified)?: size =\s*([\d.]+) MiB \(\s*{_N} cells,\s*{_N} layers")
_KV_K = re.compile(r"K \((\w+)\):")
_KV_V = re.compile(r"V \((\w+)\)")
_KV_ISWA = re.compile(r"^llama_kv_cache\w{0,20}_iswa: creating\s+(non-SWA|SWA) KV cache")
_N_SWA = re.compile(rf"^print_info: (n_swa|is_swa_any)\s+=\s*{_N}\s*$")
_CTX_PARAM = re.compile(r"^llama_context: (n_ctx|n_ctx_seq|n_ctx_per_seq|n_seq_max|flash_attn)\s+=\s*(\S+)\s*$")
# "llama_context:"/"sched_reserve: Flash Attention was auto, set to enabled" (b6327 on), "resolve_fused_ops:
# Flash Attention enabled" / "... Flash Attention not supported, set to disabled" (2026 builds)
_FA_RESOLVED = re.compile(r"^\w+: Flash Attention (?:was auto, set to )?(enabled|disabled|not supported)")
_SLOTS = re.compile(rf"^(?:srv\s+)?\w+: initializing, n_slots = {_N}, n_ctx_slot = {_N}")
_DEVICE = re.compile(r"^\s*- (\S+)\s*: (.+?) \((\d+) MiB, (\d+) MiB free\)")
_SYSINFO = re.compile(r"^system_info: n_threads = .*?\| CPU : (.*)$")  # "CPU : AVX2 = 1 | ... | REPACK = 1 | "
_FEATURE = re.compile(r"^\s*([A-Z][A-Z0-9_]*) = 1\s*$")
_FIT = re.compile(r"^((?:common|llama)_(?:params_fit_impl|fit_params|params_fit)): (.+)$")
_FIT_DONE = re.compile(r"^\w+: fitting params to free memory took ")
# "srv    operator(): operator(): cleaning up before exit..." ("^C": the Ctrl-C a terminal echoed before it)
_EXIT = re.compile(r"^(?:\^C)?(?:srv\s+)?[\w()]+: (?:[\w()]+: )?cleaning up before exit")
MAX_LIST = 256  # fit lines, devices, buffers of one log: more is no llama.cpp log
_LOAD = ("llama_model_loader: loaded meta data", "load_tensors: loading model tensors")
# None: DeepSeek V4's compressor state, "%10s DSV4 %s state buffer size" (src/llama-kv-cache-dsv4.cpp; no published
# log of it among the fixtures yet), per-sequence state like the RS buffers of recurrent layers
_KINDS = {"KV": "kv", "RS": "rs", "output": "output", "compute": "compute", None: "rs"}


@dataclass
class LogFacts:
    """Everything parsed from one server log."""

    placement: Placement = field(default_factory=Placement)
    memory: Memory = field(default_factory=Memory)
    build_line: str | None = None
    build_number: int | None = None  # as the log states it (0: a build without git metadata)
    build_commit: str | None = None


def _add(buffers: dict[str, float], name: str, value: float) -> None:
    buffers[name] = round(buffers.get(name, 0.0) + value, 2)


@dataclass
class _Reader:
    """The state of one pass over a log's lines."""

    facts: LogFacts = field(default_factory=LogFacts)
    load: int = 0  # 0 until a load starts: a pasted excerpt's lines count as the first load and context
    ctx: int = 0
    meta_open: bool = False  # "loaded meta data" seen and its "loading model tensors" still to come
    bufs: dict[str, dict[str, float]] = field(default_factory=dict)
    draft: dict[str, dict[str, float]] = field(default_factory=dict)
    caches: list[KvCache] = field(default_factory=list)
    swa: bool | None = None
    buffer_names: list[str] = field(default_factory=list)
    n_swa: int | None = None
    swa_any: bool = False

    def restart(self) -> None:
        """The fit phase is over: what its trial loads printed is not the run (fit lines and devices stay)."""
        old = self.facts.placement
        self.facts.placement = Placement(fit=old.fit, devices=old.devices, cpu_features=old.cpu_features)
        self.load = self.ctx = 0
        self.meta_open, self.swa = False, None
        self.bufs, self.draft, self.caches, self.buffer_names = {}, {}, [], []

    def buffer(self, kind: str, name: str, size: str) -> None:
        value = mib(size)
        if value is None or len(self.buffer_names) >= MAX_LIST:
            return  # an impossible size is unknown, not stored
        self.buffer_names.append(name)
        unit = self.load if kind == "model" else self.ctx
        # a draft's buffers are kept per load/context and kind until the end, where they are summed
        bufs = self.bufs.setdefault(kind, {}) if unit <= 1 else self.draft.setdefault(f"{kind}{unit}", {})
        if kind == "compute":
            bufs[name] = value  # a re-reserve of the same context replaces its compute buffer
        else:
            _add(bufs, name, value)

    def count(self, line: str) -> None:
        """Number the loads and contexts; the fit phase's end starts the count again."""
        if _FIT_DONE.match(line):
            self.restart()
        elif line.startswith(_LOAD):
            if line.startswith(_LOAD[0]) or not self.meta_open:
                self.load += 1
            self.meta_open = line.startswith(_LOAD[0])
        elif line.startswith("llama_context: n_seq_max"):
            self.ctx += 1

    def kv_cache(self, m: re.Match[str], line: str) -> None:
        """A KV cache's size line: "size = 22.50 MiB ( 1024 cells, 30 layers, 1/1 seqs), K (f16): ..., V (f16): ..."
        (the types are looked for one after the other: a pattern spanning both would backtrack on a long line)."""
        size, k = mib(m.group(1)), _KV_K.search(line, m.end())
        v = _KV_V.search(line, k.end()) if k else None
        if size is not None and k and v and len(self.caches) < MAX_LIST:
            self.caches.append(KvCache(swa=self.swa, size=size, cells=count(m.group(2)), layers=count(m.group(3)),
                                       type_k=k.group(1), type_v=v.group(1)))

    def line(self, line: str) -> None:
        self.count(line)
        p, target_ctx = self.facts.placement, self.ctx <= 1
        if m := _OFFLOADED.match(line):
            if self.load <= 1:
                p.gpu_layers, p.total_layers = count(m.group(1)), count(m.group(2))
        elif m := _MODEL_BUF.match(line):
            self.buffer("model", m.group(1), m.group(2))
        elif m := _KV_ISWA.match(line):
            self.swa = m.group(1) == "SWA"
        elif m := _BUF.match(line):
            self.buffer(_KINDS[m.group(2)], m.group(1), m.group(3))
        elif m := _KV_SIZE.match(line):
            if target_ctx:
                self.kv_cache(m, line)
        elif m := _N_SWA.match(line):
            if m.group(1) == "n_swa":
                self.n_swa = count(m.group(2))
            else:
                self.swa_any = m.group(2) == "1"
        elif (m := _CTX_PARAM.match(line)) and target_ctx:
            key, val = m.group(1), m.group(2)
            if key == "flash_attn":  # "auto" is decided later, by the resolution line
                p.flash_attn = {"enabled": True, "disabled": False}.get(val, p.flash_attn)
            elif (n := count(val)) is not None:
                setattr(p, {"n_seq_max": "n_slots", "n_ctx_per_seq": "n_ctx_seq"}.get(key, key), n)
        elif (m := _FA_RESOLVED.match(line)) and target_ctx:
            p.flash_attn = m.group(1) == "enabled"
        elif m := _SLOTS.match(line):
            p.n_slots = count(m.group(1))
        elif m := _FIT.match(line):
            if len(p.fit) < MAX_LIST:
                p.fit.append(f"{m.group(1)}: {m.group(2).strip()}")
        elif line.startswith("common_params_print_info: build"):
            self.facts.build_line = line.split("common_params_print_info: ", 1)[1].strip()
        elif m := _SYSINFO.match(line):  # the CPU's section ends where another backend's ("CUDA : ...") starts
            section = re.split(r"\|\s*[A-Za-z][\w-]* : ", m.group(1))[0]
            p.cpu_features = [f.group(1) for part in section.split("|") if (f := _FEATURE.match(part))]
        elif line.startswith("device_info:"):
            p.devices = []
        elif (m := _DEVICE.match(line)) and len(p.devices) < MAX_LIST and count(m.group(3)) is not None:
            p.devices.append(f"{m.group(1)}: {m.group(2)} ({m.group(3)} MiB)")


def parse_server_log(text: str, printed: Iterable[str] = ()) -> LogFacts:
    """Parse a llama-server log (best with -lv 4); facts not found stay None (never guessed).

    `printed`: the strings of the model's GGUF (general.name, token texts, the chat template, its path), which
    llama.cpp prints verbatim: where they hold newlines they cannot add lines of their own (logtext). A figure that
    cannot be real (a size past 1 PiB, a count of a hundred digits) stays unknown.
    CollectorError when the log is from a build older than logbuild.MIN_BUILD."""
    lines = log_lines(text, printed)
    end = load_end(lines)  # what follows the chat template's example is no load fact: only the exit table is read
    load = lines[:end]
    build = next((b for line in load if (b := build_of(line)) is not None), None)
    check_lines(load, build[0] if build else None)
    r = _Reader()
    if build:
        r.facts.build_number, r.facts.build_commit = build
    for line in load:
        r.line(line)
    facts, p, mem = r.facts, r.facts.placement, r.facts.memory
    p.n_swa = r.n_swa if r.swa_any else None
    if p.gpu_layers is not None and p.total_layers is not None and p.gpu_layers > p.total_layers:
        p.gpu_layers = p.total_layers = None  # an impossible count is unknown
    if r.caches:
        mem.kv_caches = r.caches
        mem.kv_cache = round(sum(c.size for c in r.caches), 2)
        p.kv_type_k, p.kv_type_v = r.caches[0].type_k, r.caches[0].type_v
    for kind in ("model", "kv", "rs", "output", "compute"):
        setattr(mem, f"{kind}_buffers", r.bufs.get(kind, {}))
    for bufs in r.draft.values():
        for name, value in bufs.items():
            _add(mem.draft_buffers, name, value)
    # the exit table follows the server's "cleaning up before exit" line; tables before it are the fit phase's trials
    exits = [i for i, line in enumerate(lines) if _EXIT.match(line)]
    mem.breakdown = parse_breakdown(lines[exits[-1]:])[:MAX_LIST] if exits else []
    p.llama_devices = devices_of(load, r.buffer_names)
    return facts
