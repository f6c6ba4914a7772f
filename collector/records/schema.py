"""Record schema, version 1: the contract between the collector and the site.

Units are in the key names (`_mib`, `_bytes`, `_w`, `_ms`, `_tps`). `None` means "not known": the
collector never invents a value. New keys may be added as optional fields; renaming or removing a key
needs a new schema_version and a migration in `store.py`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorInfo(_Block):
    """Why a run failed: the stage (load, warmup, measure, kld, ...), a one-line message, the log tail."""

    stage: str
    message: str
    log_tail: list[str] = Field(default_factory=list)


class Source(_Block):
    """Measured by this collector, or imported from a cited publication or another tool's output."""

    type: Literal["measured", "imported"]
    collector_version: str | None = None
    tool: str | None = None  # e.g. llama-bench, llama-perplexity for imported tool output
    citation: str | None = None
    url: str | None = None
    note: str | None = None
    figure: str | None = None  # imported: which figure of the source ("<file stem>#<figure id>"); re-import key
    raw: dict[str, Any] | None = None  # imported tool output: every field the tool reported for this test, verbatim

    @model_validator(mode="after")
    def _imported_needs_citation(self) -> "Source":
        if self.type == "imported" and not (self.citation or "").strip():
            raise ValueError("an imported record needs source.citation (where the figures come from)")
        return self


class CpuInfo(_Block):
    model: str | None = None
    cores: int | None = None  # physical cores
    threads: int | None = None  # logical CPUs


class GpuInfo(_Block):
    name: str
    uuid: str | None = None
    index: int | None = None
    pci_bus_id: str | None = None
    vram_total_mib: float | None = None
    driver: str | None = None
    cuda: str | None = None
    compute_capability: str | None = None
    pcie_gen_max: int | None = None
    pcie_width_max: int | None = None
    power_limit_w: float | None = None
    mem_bus_width_bits: int | None = None
    mem_clock_max_mhz: int | None = None
    mem_bandwidth_gbps: float | None = None  # GB/s, from bus width and max memory clock
    backend: str | None = None  # CUDA, Vulkan, ROCm, ... when known


class Host(_Block):
    cpu: CpuInfo = Field(default_factory=CpuInfo)
    ram_total_mib: float | None = None
    os: str | None = None
    hostname_hash: str | None = None  # sha256 prefix, never the plain host name
    gpus: list[GpuInfo] = Field(default_factory=list)


class LlamaCpp(_Block):
    version: str | None = None  # e.g. "b8054" or "b0-unknown"
    build_number: int | None = None
    commit: str | None = None
    backend: str | None = None  # CPU, CUDA, Vulkan, ...
    compiler: str | None = None
    target: str | None = None
    version_text: str | None = None  # raw `llama-server --version` output


class ModelInfo(_Block):
    name: str | None = None  # general.name
    arch: str | None = None
    size_label: str | None = None
    quant: str | None = None  # short label, e.g. Q4_K_M
    file_type: str | None = None  # llama.cpp ftype name, e.g. "Q4_K - Medium"
    file_name: str | None = None
    size_bytes: int | None = None  # all shards together
    size_stated: str | None = None  # imported: the file size as the source states it, e.g. "44.7 GB" (never converted)
    n_files: int | None = None
    sha256: str | None = None  # of the first shard's bytes followed by the others, in order
    params_total: int | None = None
    params_active: int | None = None  # per token; equals total for dense models
    bytes_per_token: int | None = None  # weight bytes read per generated token
    n_layers: int | None = None
    n_experts: int | None = None
    n_experts_used: int | None = None
    n_vocab: int | None = None
    ctx_train: int | None = None
    bits_per_weight: float | None = None
    origin: str | None = None  # the plan's reference: a path or pypi:PACKAGE==VER/member


GpuLayers = Union[int, Literal["auto", "all"]]


class SpeedConfig(_Block):
    """What was asked for; each key is one llama-server flag (None = flag not passed)."""

    ctx_size: int | None = None
    n_gpu_layers: GpuLayers | None = None
    n_cpu_moe: int | None = None
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    flash_attn: Literal["on", "off", "auto"] | None = None
    batch_size: int | None = None
    ubatch_size: int | None = None
    threads: int | None = None
    parallel: int | None = None
    tensor_split: str | None = None
    extra_args: list[str] = Field(default_factory=list)


class Placement(_Block):
    """What llama.cpp actually did, read from its log."""

    gpu_layers: int | None = None
    total_layers: int | None = None
    cpu_moe_layers: int | None = None
    flash_attn: bool | None = None
    n_ctx: int | None = None
    n_ctx_seq: int | None = None
    n_slots: int | None = None
    fit: list[str] = Field(default_factory=list)  # auto-fit decisions, one line each
    devices: list[str] = Field(default_factory=list)


class BreakdownRow(_Block):
    """One row of llama.cpp's exit memory breakdown table (MiB)."""

    name: str
    total: float | None = None
    free: float | None = None
    self_: float | None = Field(default=None, alias="self")
    model: float | None = None
    context: float | None = None
    compute: float | None = None
    unaccounted: float | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class Memory(_Block):
    vram_peak: list[float] | None = None  # per GPU, NVML used memory peak during the run
    vram_used_stated: list[float] | None = None  # imported: per GPU as the source states it (unit in vram_unit)
    vram_unit: str | None = None
    kv_cache: float | None = None
    model_buffers: dict[str, float] = Field(default_factory=dict)
    kv_buffers: dict[str, float] = Field(default_factory=dict)
    compute_buffers: dict[str, float] = Field(default_factory=dict)
    host_rss_peak: float | None = None
    breakdown: list[BreakdownRow] = Field(default_factory=list)


class PromptSuiteRef(_Block):
    name: str
    sha256: str | None = None


class Method(_Block):
    endpoint: str | None = None
    n_predict: int | None = None
    temperature: float | None = None
    seed: int | None = None
    top_k: int | None = None
    repetitions: int | None = None
    warmup: int | None = None
    depths: list[int] = Field(default_factory=list)
    prompt_suite: PromptSuiteRef | None = None
    note: str | None = None


class Stat(_Block):
    stated: float | None = None  # one figure as a published source states it, no statistic named
    median: float | None = None
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    n: int | None = None

    @classmethod
    def of(cls, values: Sequence[float], *, mean: float | None = None, digits: int | None = None) -> "Stat | None":
        """median/mean/min/max/n of raw samples (None for none); `mean` as another tool gave it; `digits` rounds."""
        if not values:
            return None

        def r(x: float) -> float:
            return round(x, digits) if digits is not None else x

        return cls(median=r(statistics.median(values)), mean=r(statistics.fmean(values)) if mean is None else mean,
                   min=r(min(values)), max=r(max(values)), n=len(values))


class Sample(_Block):
    """Raw numbers for one prompt category at one filled depth, one list entry per repetition."""

    category: str
    depth_tokens: int = 0
    prompt_tokens: int | None = None
    gen_tokens: int | None = None
    pp_tps: list[float] = Field(default_factory=list)  # server timings.prompt_per_second
    tg_tps: list[float] = Field(default_factory=list)  # server timings.predicted_per_second
    tg_tps_client: list[float] = Field(default_factory=list)  # client: tokens after the first / time
    ttft_ms: list[float] = Field(default_factory=list)  # client: request sent -> first token
    note: str | None = None


class Summary(_Block):
    tg_tps: Stat | None = None
    pp_tps: Stat | None = None
    ttft_ms: Stat | None = None
    tg_tps_client: Stat | None = None
    power_w_mean: float | None = None
    energy_j: float | None = None
    energy_j_per_token: float | None = None
    energy_method: str | None = None  # energy_counter (NVML mJ counter delta) | mean_power_x_time


class EngineBench(_Block):
    """The same model and flags measured by llama-bench, for the server-vs-engine gap."""

    tool: str = "llama-bench"
    n_prompt: int | None = None
    n_gen: int | None = None
    pp_tps: Stat | None = None
    tg_tps: Stat | None = None
    command: list[str] = Field(default_factory=list)


class PlanRef(_Block):
    name: str | None = None
    file: str | None = None
    sha256: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class _RecordBase(_Block):
    schema_version: Literal[1] = SCHEMA_VERSION
    id: str
    created_at: datetime
    status: Literal["ok", "failed"]
    error: ErrorInfo | None = None
    source: Source
    host: Host = Field(default_factory=Host)
    llama_cpp: LlamaCpp = Field(default_factory=LlamaCpp)
    model: ModelInfo = Field(default_factory=ModelInfo)
    command: list[str] = Field(default_factory=list)  # exact argv; the model path replaced by {model}
    plan: PlanRef | None = None
    tags: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _failed_needs_error(self) -> "_RecordBase":
        if self.status == "failed" and self.error is None:
            raise ValueError("a failed record needs an error block (stage, message)")
        if self.status == "ok" and self.error is not None:
            raise ValueError("an ok record must not carry an error block")
        return self


class SpeedRecord(_RecordBase):
    kind: Literal["speed"] = "speed"
    config: SpeedConfig = Field(default_factory=SpeedConfig)
    placement: Placement = Field(default_factory=Placement)
    memory_mib: Memory = Field(default_factory=Memory)
    load_seconds: float | None = None
    method: Method = Field(default_factory=Method)
    samples: list[Sample] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    engine_bench: EngineBench | None = None


class Corpus(_Block):
    name: str
    sha256: str | None = None
    tokens: int | None = None  # tokens evaluated (chunks x ctx_size), when known
    ctx_size: int | None = None
    chunks: int | None = None


class KldConfig(_Block):
    cache_type_k: str | None = None
    cache_type_v: str | None = None
    flash_attn: Literal["on", "off", "auto"] | None = None
    batch_size: int | None = None
    ubatch_size: int | None = None
    threads: int | None = None
    n_gpu_layers: GpuLayers | None = None
    extra_args: list[str] = Field(default_factory=list)


class KldResults(_Block):
    """Every statistic of llama-perplexity's KLD summary. Percent values are in percent."""

    ppl_q: float | None = None
    ppl_q_unc: float | None = None
    ppl_base: float | None = None
    ppl_base_unc: float | None = None
    cor_ln_ppl: float | None = None  # percent
    ln_ppl_ratio: float | None = None
    ln_ppl_ratio_unc: float | None = None
    ppl_ratio: float | None = None
    ppl_ratio_unc: float | None = None
    ppl_diff: float | None = None
    ppl_diff_unc: float | None = None
    kld_mean: float | None = None
    kld_mean_unc: float | None = None
    kld_max: float | None = None
    kld_p99_9: float | None = None
    kld_p99: float | None = None
    kld_p95: float | None = None
    kld_p90: float | None = None
    kld_median: float | None = None
    kld_p10: float | None = None
    kld_p5: float | None = None
    kld_p1: float | None = None
    kld_p0_1: float | None = None
    kld_min: float | None = None
    dp_mean: float | None = None
    dp_mean_unc: float | None = None
    dp_max: float | None = None
    dp_p99_9: float | None = None
    dp_p99: float | None = None
    dp_p95: float | None = None
    dp_p90: float | None = None
    dp_p75: float | None = None
    dp_median: float | None = None
    dp_p25: float | None = None
    dp_p10: float | None = None
    dp_p5: float | None = None
    dp_p1: float | None = None
    dp_p0_1: float | None = None
    dp_min: float | None = None
    dp_rms: float | None = None
    dp_rms_unc: float | None = None
    same_top_p: float | None = None
    same_top_p_unc: float | None = None


class KldTiming(_Block):
    seconds: float | None = None  # this quant's llama-perplexity pass
    base_seconds: float | None = None  # the base-logits pass, when this run produced it
    base_cached: bool | None = None


class KldRecord(_RecordBase):
    kind: Literal["kld"] = "kld"
    kld_method: str = "llama-perplexity full-vocab"
    base_model: ModelInfo | None = None
    corpus: Corpus | None = None
    config: KldConfig = Field(default_factory=KldConfig)
    results: KldResults = Field(default_factory=KldResults)
    timing: KldTiming = Field(default_factory=KldTiming)


Record = Annotated[Union[SpeedRecord, KldRecord], Field(discriminator="kind")]
