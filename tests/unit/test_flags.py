"""The flag registry: every spelling it writes is one the bundled llama-server accepts, argv for each tool is
derived from it, and speed and KLD sections refuse the same bad values."""

from __future__ import annotations

import pytest

from collector.llama.binaries import help_flags
from collector.records.flags import (
    FLAGS,
    LlamaConfig,
    bench_args,
    check_value,
    known_server_flags,
    perplexity_args,
    server_args,
    unknown_flags,
)


def test_every_registry_spelling_is_a_flag_of_the_bundled_server() -> None:
    known = known_server_flags()
    for key, flag in FLAGS.items():
        missing = [s for s in flag.server if s not in known]
        assert not missing, f"{key}: {missing} are not llama-server flags (server_flags.txt)"


def test_argv_for_each_tool_comes_from_one_config() -> None:
    c = LlamaConfig(ctx_size=4096, n_gpu_layers=99, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on",
                    parallel=2, tensor_split="3,1", extra_args=["--no-warmup"])
    assert server_args(c) == ["-c", "4096", "-ngl", "99", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-np", "2",
                              "-ts", "3,1", "--no-warmup"]
    bench, omitted = bench_args(c)
    assert bench == ["-ngl", "99", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "-ts", "3/1"]
    assert omitted == ["parallel=2", "extra_args=--no-warmup"]  # llama-bench cannot take them: said in the record
    assert "-np" not in perplexity_args(c) and perplexity_args(c)[:2] == ["-c", "4096"]


@pytest.mark.parametrize("key,value", [("n_gpu_layers", -5), ("ctx_size", "4096"), ("cache_type_k", "q3_k"),
                                       ("tensor_split", "1;1"), ("flash_attn", "maybe"), ("threads", 0)])
def test_bad_values_are_refused_with_what_is_allowed(key: str, value: object) -> None:
    got, why = check_value(key, value)
    assert got is None and why and why.startswith("expected"), why


def test_managed_flags_cannot_sneak_in_through_extra_args() -> None:
    _, why = check_value("extra_args", ["-c", "8192"])
    assert why == "-c is set by the collector; use the plan key ctx_size instead"
    _, why = check_value("extra_args", ["--port=9"])
    assert why and "the collector sets it for every run" in why
    assert unknown_flags(["--no-warmup", "--made-up", "-1", "--ub"], known_server_flags()) == ["--made-up", "--ub"]


@pytest.mark.slow
def test_snapshot_is_the_real_llama_server_help(llama_tools) -> None:
    """server_flags.txt must be regenerated (`collector llama flags`) when the bundled build changes."""
    assert help_flags(llama_tools.path("llama-server")) == known_server_flags()


def test_a_flag_added_in_one_place_reaches_plans_argv_and_labels(tmp_path) -> None:
    """split_mode was added as one registry field (README, Developing): everything else derives from it."""
    from collector.measure.plan import load_plan
    from collector.publish.words.labels import config_summary
    from fixtures.records.factory import cpu_host, model, speed

    assert check_value("split_mode", "row") == ("row", None)
    assert check_value("split_mode", "rows") == (None, "expected none, layer or row, got 'rows'")
    c = LlamaConfig(split_mode="row")
    assert server_args(c) == ["-sm", "row"] and bench_args(c) == (["-sm", "row"], [])
    assert perplexity_args(c) == ["-sm", "row"]
    rec = speed(cpu_host(), model("M", "Q4_0", 1000), {0: 10.0}, ctx_size=512, split_mode="row")
    assert rec.command[-2:] == ["-sm", "row"] and "split mode row" in config_summary(rec)
    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    (tmp_path / "p.yaml").write_text("name: p\nmodels: [m.gguf]\nmatrix: {split_mode: [layer, row]}\n")
    assert [r.config.split_mode for r in load_plan(tmp_path / "p.yaml").runs] == ["layer", "row"]
