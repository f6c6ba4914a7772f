"""KLD runs with the real llama-quantize / llama-imatrix / llama-perplexity on SmolLM2 (ctx 256, 2 chunks)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter

from collector.base.cache import sha256_files
from collector.base.errors import CollectorError
from collector.base.progress import RecordingObserver
from collector.base.yamlcheck import Section, load_yaml_file
from collector.corpus import BUILTIN_CORPUS
from collector.llama.binaries import LlamaTools
from collector.llama.perplexity import logits_size_bytes, read_logits_header, run_base_pass, run_kld_pass
from collector.llama.tools import ToolError
from collector.quality.kld import run_kld_plan
from collector.quality.kld_plan import KldPlan, parse_kld
from collector.quality.quantize import Ladder, build_ladder
from collector.records.flags import LlamaConfig
from collector.records.index import load_records
from collector.records.schema import KldRecord
from collector.records.store import load_record
from fakes import fake_tool_folder

pytestmark = pytest.mark.slow
CTX, CHUNKS = 256, 2  # 2 x 127 = 254 scored tokens: above llama-perplexity's 100-token minimum


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, smollm2: Path):
    """A private cache dir, so every session computes its base logits for real."""
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECTOR_CACHE_DIR", str(tmp_path_factory.mktemp("kld-cache")))
    yield Path(os.environ["COLLECTOR_CACHE_DIR"])
    mp.undo()


@pytest.fixture(scope="module")
def ladder(llama_tools: LlamaTools, smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Ladder:
    """F16 (requantized from the Q4_1 demo file), Q8_0 and Q2_K_S (needs an imatrix); shared with test_quantize."""
    return build_ladder(llama_tools, smollm2, ["Q8_0", "Q2_K_S"], corpus=BUILTIN_CORPUS, imatrix_ctx=CTX,
                        imatrix_chunks=2, threads=2, out_dir=tmp_path_factory.getbasetemp() / "ladder")


def widen_vocab(src: Path, dst: Path, extra: int = 64) -> int:
    """A copy of `src` with `extra` more tokens (zero embedding rows): same weights, different vocabulary."""
    r = GGUFReader(src)
    w = GGUFWriter(dst, r.fields["general.architecture"].contents())
    n_vocab = len(r.fields["tokenizer.ggml.tokens"].contents())
    grow = {"tokenizer.ggml.tokens": [f"<extra_{i}>" for i in range(extra)],
            "tokenizer.ggml.token_type": [4] * extra, "tokenizer.ggml.scores": [0.0] * extra}
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        val = f.contents() + grow[name] if name in grow else f.contents()
        if f.types[0] == GGUFValueType.ARRAY:
            w.add_key_value(name, val, f.types[0], sub_type=f.types[1] if len(f.types) > 1 else None)
        else:
            w.add_key_value(name, val, f.types[0])
    for t in r.tensors:
        data = np.asarray(t.data)
        if t.name in ("token_embd.weight", "output.weight"):
            data = np.concatenate([data, np.zeros((extra,) + data.shape[1:], dtype=data.dtype)])
        w.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return n_vocab + extra


def make_plan(tmp_path: Path, body: str) -> KldPlan:
    f = tmp_path / "plan.yaml"
    f.write_text("kld:\n" + "".join(f"  {line}\n" for line in body.strip().splitlines()), encoding="utf-8")
    doc = load_yaml_file(f)
    return parse_kld(Section(doc, f, "").section("kld"), tmp_path)


def plan_body(base: Path, quants: list[Path], extra: str = "") -> str:
    return (f"base: {base}\nquants: [{', '.join(str(q) for q in quants)}]\nctx_size: {CTX}\nchunks: {CHUNKS}\n"
            f"batch_size: {CTX}\nthreads: 2\n{extra}")


def test_ladder_kld_records_kv_cache_and_sanity(cache: Path, ladder: Ladder, llama_tools: LlamaTools,
                                               tmp_path: Path) -> None:
    q8, q2 = (p for _, p in ladder.quants)
    plan = make_plan(tmp_path, plan_body(ladder.base, [ladder.base, q8, q2],
                                         "kv_cache: [[q8_0, q8_0], q4_0]\nflash_attn: on"))
    data = tmp_path / "data"
    obs = RecordingObserver()
    paths = run_kld_plan(plan, tools=llama_tools, data_dir=data, observer=obs)
    recs = [load_record(p) for p in paths]
    assert all(isinstance(r, KldRecord) and r.status == "ok" for r in recs), [r.error for r in recs]
    self_rec, q8_rec, q2_rec, kv8, kv4 = recs

    # sanity: the base against its own logits
    assert self_rec.model.sha256 == self_rec.base_model.sha256
    assert abs(self_rec.results.kld_mean) <= 1e-6 and self_rec.results.same_top_p == 100.0
    # quality falls with the bits, and the quantized KV caches cost something measurable
    assert 0 < q8_rec.results.kld_mean < q2_rec.results.kld_mean
    assert q8_rec.results.same_top_p > q2_rec.results.same_top_p
    assert (kv8.config.cache_type_k, kv8.config.cache_type_v, kv4.config.cache_type_v) == ("q8_0", "q8_0", "q4_0")
    assert "kv-cache" in kv4.tags and kv4.model.sha256 == kv4.base_model.sha256
    assert 0 < kv8.results.kld_mean < kv4.results.kld_mean
    # every statistic of the summary is kept
    assert all(v is not None for v in q2_rec.results.model_dump().values())
    assert q2_rec.model.quant == "Q2_K_S" and q2_rec.base_model.quant == "F16"
    assert q2_rec.corpus.sha256 and q2_rec.corpus.tokens == CHUNKS * CTX and q2_rec.corpus.chunks == CHUNKS
    assert q2_rec.command[:3] == ["llama-perplexity", "-m", "{model}"] and "{base_logits}" in q2_rec.command
    assert " -ctk q4_0 -ctv q4_0 " in " ".join(kv4.command) + " "
    # the base-logits command is kept too, whether this run computed the logits or found them cached
    assert kv4.base_command[:3] == ["llama-perplexity", "-m", "{base_model}"] and "{corpus}" in kv4.base_command
    assert kv4.base_command[-2:] == ["--kl-divergence-base", "{base_logits}"] and "-ctk" not in kv4.base_command

    # N passes + 1: one base pass, its logits cached at the predicted size
    assert all(r.timing.base_cached is False and r.timing.base_seconds for r in recs)
    kld_files = list((cache / "kld-logits").glob("*"))
    assert len(kld_files) == 1 and kld_files[0].suffix == ".kld"
    assert kld_files[0].stat().st_size == logits_size_bytes(CTX, CHUNKS, q2_rec.base_model.n_vocab)

    # a second run skips what is recorded; --force reruns the quants against the cached logits
    assert run_kld_plan(plan, tools=llama_tools, data_dir=data, observer=obs) == []
    assert sum(1 for e in obs.events if e[0] == "finish" and e[3] == "skipped") == 5
    forced = run_kld_plan(make_plan(tmp_path, plan_body(ladder.base, [q8])), tools=llama_tools,
                          data_dir=data, force=True)
    again = load_record(forced[0])
    assert again.timing.base_cached is True and again.timing.base_seconds is None
    assert again.results.kld_mean == q8_rec.results.kld_mean
    assert len(load_records(data)) == 6


def test_vocab_mismatch_is_a_failed_record(cache: Path, ladder: Ladder, llama_tools: LlamaTools,
                                           tmp_path: Path) -> None:
    wide = tmp_path / "wide.gguf"
    widen_vocab(ladder.quants[0][1], wide)
    plan = make_plan(tmp_path, plan_body(ladder.base, [wide]))
    [path] = run_kld_plan(plan, tools=llama_tools, data_dir=tmp_path / "data")
    rec = load_record(path)
    assert rec.status == "failed" and rec.error.stage == "kld"
    assert "vocabulary of 49216 tokens" in rec.error.message and "49152" in rec.error.message
    assert rec.results.kld_mean is None

    # without the header check, llama-perplexity itself only logs it and prints a meaningless KLD
    logits = next((cache / "kld-logits").glob("*.kld"))
    with pytest.raises(ToolError, match="vocabulary of 49152 tokens but the model has 49216") as exc:
        run_kld_pass(llama_tools, wide, logits, LlamaConfig(ctx_size=CTX, batch_size=CTX, threads=2))
    assert any("inconsistent vocabulary" in line for line in exc.value.log_tail)


def test_ctx_mismatch_with_cached_logits(cache: Path, ladder: Ladder, llama_tools: LlamaTools) -> None:
    logits = next((cache / "kld-logits").glob("*.kld"))
    assert read_logits_header(logits)[0] == CTX
    # llama-perplexity would silently score at the file's ctx 256 and the record would say 128
    with pytest.raises(ToolError, match="computed with ctx_size 256 but this pass uses 128"):
        run_kld_pass(llama_tools, ladder.quants[0][1], logits, LlamaConfig(ctx_size=128, batch_size=128, threads=2))


def test_too_few_tokens(cache: Path, ladder: Ladder, llama_tools: LlamaTools, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text(BUILTIN_CORPUS.read_text(encoding="utf-8")[:1500], encoding="utf-8")  # ~350 tokens
    plan = make_plan(tmp_path, plan_body(ladder.base, [ladder.quants[0][1]], f"corpus: {short}"))
    with pytest.raises(CollectorError, match=r"short\.txt has \d+ tokens, which at ctx_size 256 scores"):
        run_kld_plan(plan, tools=llama_tools, data_dir=tmp_path / "data")
    assert not (tmp_path / "data").exists()

    # the tool's own behaviour, which the plan check above guards against
    with pytest.raises(ToolError, match="corpus is too short: ctx_size 512 needs at least 1024"):
        run_base_pass(llama_tools, ladder.base, short, tmp_path / "b.kld", LlamaConfig(ctx_size=512, batch_size=512),
                      chunks=1)
    base = tmp_path / "c128.kld"
    run_base_pass(llama_tools, ladder.base, short, base, LlamaConfig(ctx_size=128, batch_size=128, threads=2), chunks=1)
    with pytest.raises(ToolError, match="no KLD summary: fewer than 100 tokens"):  # 63 scored tokens
        run_kld_pass(llama_tools, ladder.quants[0][1], base, LlamaConfig(ctx_size=128, batch_size=128, threads=2))


def _fake_bin(real: LlamaTools, where: Path, crash_on: str) -> LlamaTools:
    """The real tools, except a llama-perplexity that aborts (SIGABRT) in the pass named by `crash_on`."""
    test = '[ -n "$kl" ]' if crash_on == "kld" else '[ -z "$kl" ]'
    script = ("kl=''\nfor a in \"$@\"; do [ \"$a\" = --kl-divergence ] && kl=1; done\n"
              f"if {test}; then echo 'load_tensors: loading model'; echo 'GGML_ASSERT(fake) failed' >&2; "
              f"kill -ABRT $$; fi\nexec {real.path('llama-perplexity')} \"$@\"\n")
    return LlamaTools(fake_tool_folder(real.bin_dir, where, "llama-perplexity", script), "--llama-bin")


@pytest.mark.parametrize("crash_on", ["kld", "base"])
def test_llama_perplexity_crash(cache: Path, ladder: Ladder, llama_tools: LlamaTools, tmp_path: Path,
                                crash_on: str) -> None:
    tools = _fake_bin(llama_tools, tmp_path / "bin", crash_on)
    # a corpus of its own, so the base pass is not served from the cache
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(BUILTIN_CORPUS.read_text(encoding="utf-8")[:9000 if crash_on == "kld" else 9100],
                      encoding="utf-8")
    plan = make_plan(tmp_path, plan_body(ladder.base, [ladder.quants[0][1]], f"corpus: {corpus}"))
    [path] = run_kld_plan(plan, tools=tools, data_dir=tmp_path / "data")
    rec = load_record(path)
    assert rec.status == "failed"
    assert rec.error.stage == ("kld" if crash_on == "kld" else "base-logits")
    assert "killed by signal 6" in rec.error.message
    assert rec.error.log_tail[-1] == "GGML_ASSERT(fake) failed"
    logits = list((cache / "kld-logits").glob(f"*-{sha256_files([corpus])[:16]}-*"))
    # a crashed base pass leaves nothing that a later run would reuse
    assert [p.suffix for p in logits] == ([".kld"] if crash_on == "kld" else [])


def test_kv_cache_at_two_context_sizes(cache: Path, ladder: Ladder, llama_tools: LlamaTools, tmp_path: Path) -> None:
    """Quants at the first size, the KV cache at both; base logits once per size, each at its predicted size."""
    q8 = ladder.quants[0][1]
    plan = make_plan(tmp_path, plan_body(ladder.base, [q8], "kv_cache: [q8_0]\nflash_attn: on")
                     .replace(f"ctx_size: {CTX}\nchunks: {CHUNKS}", f"ctx_size: [{CTX}, {2 * CTX}]\nchunks: [2, 1]"))
    obs = RecordingObserver()
    paths = run_kld_plan(plan, tools=llama_tools, data_dir=tmp_path / "data", observer=obs)
    recs = [load_record(p) for p in paths]
    assert all(isinstance(r, KldRecord) and r.status == "ok" for r in recs), [r.error for r in recs]
    got = [(r.model.quant, r.config.cache_type_k, r.corpus.ctx_size, r.config.ctx_size, r.corpus.chunks) for r in recs]
    assert got == [("Q8_0", "f16", CTX, CTX, 2), ("F16", "q8_0", CTX, CTX, 2), ("F16", "q8_0", 2 * CTX, 2 * CTX, 1)]
    deep = recs[2]
    assert deep.results.kld_mean and deep.results.kld_mean > 0 and "kv-cache" in deep.tags
    assert f" -c {2 * CTX} " in " ".join(deep.command) + " " and f" -c {2 * CTX} " in " ".join(deep.base_command)
    assert deep.corpus.tokens == 2 * CTX and deep.corpus.sha256 == recs[0].corpus.sha256
    n_vocab = deep.base_model.n_vocab
    for ctx, chunks in ((CTX, 2), (2 * CTX, 1)):  # one base-logits file per size, at its predicted size
        # this test's base model and corpus (the cache is shared with the module's other tests)
        [f] = (cache / "kld-logits").glob(f"{deep.base_model.sha256[:16]}-{deep.corpus.sha256[:16]}-"
                                          f"c{ctx}-n{chunks}-b{CTX}.kld")
        assert f.stat().st_size == logits_size_bytes(ctx, chunks, n_vocab) and read_logits_header(f)[0] == ctx
    assert any("at ctx 512" in str(e) for e in obs.events)
    # a second run skips all three; each size is its own measurement
    assert run_kld_plan(plan, tools=llama_tools, data_dir=tmp_path / "data") == []


def test_room_for_every_base_logits_file_is_checked_before_any_pass(tmp_path: Path, smollm2: Path) -> None:
    from collector.quality.kld import _check_logits_room, _Size
    from collector.records.schema import Corpus, ModelInfo

    plan = make_plan(tmp_path, f"base: {smollm2}\nkv_cache: [q8_0]\nctx_size: [512, 4096]")
    corpus = Corpus(name="x", ctx_size=512, chunks=1)
    sizes = [_Size(plan.at(512), corpus, 10, [], tmp_path / "a.kld"),
             _Size(plan.at(4096), corpus, 10**7, [], tmp_path / "b.kld")]
    with pytest.raises(CollectorError, match=r"the base logits of m\.gguf \(ctx 512 x 10 chunks \+ ctx 4096 x "
                                             r"10000000 chunks\) needs [\d,]+ MiB but only"):
        _check_logits_room(sizes, ModelInfo(n_vocab=49152), tmp_path / "m.gguf")
