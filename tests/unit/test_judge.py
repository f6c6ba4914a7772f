"""The judge (collector.judge): one hand-made record per rule showing its verdict and that the record's stated
figures are untouched, the rules' edges (margin, layer split, partial offload, experts), and the scan of data/
that lists every figure over the bandwidth bound."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from clirun import invoke

from collector import catalog
from collector.base.errors import CollectorError
from collector.judge import (
    AGAINST_SOURCE,
    IMPLAUSIBLE,
    INVALID,
    MARGIN,
    bandwidth,
    judge_record,
    judge_records,
    load_summaries_from,
    model_key,
    model_name,
    normalise_test,
    summaries,
)
from collector.judge.crowd import WIDE
from collector.judge.names import readable_labels
from collector.records import store
from collector.records.flags import LlamaConfig
from collector.records.schema import (
    Conditions,
    GpuInfo,
    Host,
    ModelInfo,
    Placement,
    Sample,
    Source,
    SpeedRecord,
    Stat,
    Summary,
)
from collector.records.store import AnyRecord

REPO = Path(__file__).resolve().parents[2]
RTX4090 = "NVIDIA GeForce RTX 4090"  # the catalog: 1010 GB/s
LLAMA3_8B_Q4 = 4.58 * 2**30  # "4.58 GiB", as llama-bench states it


def _stat(text: str) -> Stat:
    """A figure as a source writes it: "94", "~94", or llama-bench's "3.05 ± 0.10" (mean ± stddev)."""
    if "±" in text:
        mean, sd = (float(x) for x in text.split("±"))
        return Stat(mean=mean, stddev=sd, text=text)
    return Stat(stated=float(text.lstrip("~")), text=text, approx=text.startswith("~"))


def _rec(tg: str | None = "100", pp: str | None = None, gpus: tuple[str, ...] = (RTX4090,),
         **kw: object) -> SpeedRecord:
    """An imported speed record: a crowd row or a post's figure as its source states it."""
    base: dict[str, object] = dict(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="imported", citation="a hand-made source", figure=f"hand/{store.new_id()}#1"),
        host=Host(gpus=[GpuInfo(name=g) for g in gpus]),
        model=ModelInfo(name="LLaMA 3 8B", quant="Q4_K_M", size_stated="4.58 GiB"),
        summary=Summary(tg_tps=_stat(tg) if tg else None, pp_tps=_stat(pp) if pp else None))
    base.update(kw)
    return SpeedRecord(**base)


def _measured(tg: list[float]) -> SpeedRecord:
    """A run of the collector's on an RTX 4090 (bytes per token read from the GGUF)."""
    config = LlamaConfig(ctx_size=4096)
    return SpeedRecord(
        id=store.new_id(), created_at=store.utc_now(), status="ok",
        source=Source(type="measured", collector_version="0.1.0"), host=Host(gpus=[GpuInfo(name=RTX4090)]),
        model=ModelInfo(name="Meta Llama 3.1 8B Instruct", quant="Q4_K_M", file_name="m.gguf", sha256="ab" * 32,
                        bytes_per_token=4_600_000_000),
        config=config, command=["llama-server", "-m", "{model}", "-c", "4096"],
        placement=Placement(gpu_layers=33, total_layers=33), samples=[Sample(category="sql", tg_tps=tg)],
        summary=Summary(tg_tps=Stat.of(tg)), conditions=Conditions(noisy=False))


def _untouched(rec: SpeedRecord, tmp_path: Path) -> None:
    """The judge read the record and changed nothing: the same dump, and a saved copy loads back equal."""
    before = store.dump_record(rec)
    judge_record(rec)
    judge_records([rec])
    assert store.dump_record(rec) == before
    path = store.save_record(rec, tmp_path)
    assert store.load_record(path) == rec


def _bw() -> float:
    dev = catalog.resolve(RTX4090)
    assert dev is not None and dev.bandwidth_gbs is not None
    return dev.bandwidth_gbs * 1e9


# --- the bandwidth bound ---------------------------------------------------------------------------------------


def test_a_figure_over_the_bandwidth_bound_is_implausible_and_stays_as_stated(tmp_path: Path) -> None:
    rec = _rec(tg="500.00")  # 4.92 GB a token x 500 t/s = 2.46 TB/s on a 1010 GB/s card
    (fig,) = judge_record(rec)
    assert (fig.figure, fig.status, fig.text, fig.value) == ("tg", IMPLAUSIBLE, "500.00", 500.0)
    (v,) = fig.verdicts
    assert v.rule == "bandwidth" and v.numbers["bandwidth_gb_s"] == _bw() / 1e9
    assert v.numbers["implied_gb_s"] == pytest.approx(LLAMA3_8B_Q4 * 500 / 1e9, abs=0.1)
    assert fig.reason.startswith("implies 2.46 TB/s of weight reads (4.92 GB a token x 500 t/s); "
                                 f"{RTX4090}: 1.01 TB/s (2.43x, more than 1.25x)")
    assert rec.summary.tg_tps is not None and rec.summary.tg_tps.text == "500.00"
    _untouched(rec, tmp_path)
    assert judge_record(_rec(tg="190")) == []  # 0.92x: what a 4090 does


def test_the_margin_is_where_the_reason_says() -> None:
    per_token = LLAMA3_8B_Q4
    just_in, just_over = (f"{MARGIN * _bw() / per_token * k:.2f}" for k in (0.99, 1.01))
    assert judge_record(_rec(tg=just_in)) == []
    (fig,) = judge_record(_rec(tg=just_over))
    assert fig.verdicts[0].numbers["ratio"] == pytest.approx(MARGIN * 1.01, abs=0.01)


def test_several_gpus_in_a_layer_split_read_in_turn_so_one_gpus_bandwidth_bounds_them() -> None:
    tg = f"{1.6 * _bw() / LLAMA3_8B_Q4:.2f}"  # 1.6x one 4090: within the pair's sum, beyond one card
    cells = {"model": "llama 8B Q4_K - Medium", "test": "tg 128", "t/s": tg}  # llama-bench: no sm column
    bench = Source(type="imported", citation="x", tool="llama-bench", raw={"cells": cells}, figure="b/1#1")
    (fig,) = judge_record(_rec(tg=tg, gpus=(RTX4090, RTX4090), source=bench))
    assert "2x NVIDIA GeForce RTX 4090, layer split: the GPUs read in turn (one GPU's)" in fig.reason
    row = LlamaConfig(split_mode="row")  # rows of every layer on both GPUs at once: the bound is the sum
    assert judge_record(_rec(tg=tg, gpus=(RTX4090, RTX4090), source=bench, config=row)) == []
    assert judge_record(_rec(tg=tg, gpus=(RTX4090, RTX4090))) == []  # split not stated: the lenient sum


def test_layers_in_system_ram_leave_only_the_gpus_share_to_its_bound() -> None:
    tg = f"{1.6 * _bw() / LLAMA3_8B_Q4:.2f}"
    half = Placement(gpu_layers=16, total_layers=32)
    assert judge_record(_rec(tg=tg, placement=half)) == []  # 0.8x of the card for its 16 layers
    assert judge_record(_rec(tg=tg))  # every layer on the card: over
    c = bandwidth.check(_rec(tg=tg, placement=half), catalog.default())
    assert c.judged and c.bound is not None and c.bound.share == 0.5


def test_an_apple_soc_bounds_every_layer_wherever_it_runs() -> None:
    m1 = ("Apple M1 4P+4E+7GPU",)  # 68.2 GB/s: one memory for CPU and GPU
    (fig,) = judge_record(_rec(tg="30", gpus=m1, placement=Placement(gpu_layers=8, total_layers=32)))
    assert "Apple M1 (7-core GPU): 68.2 GB/s" in fig.reason and "a token x 30 t/s" in fig.reason


def test_experts_count_by_their_used_share_and_unknown_experts_are_not_judged() -> None:
    moe = ModelInfo(name="Qwen3-Coder-Next", quant="IQ2_XS", size_stated="21 GB", moe=True, n_experts=512,
                    n_experts_used=10)
    assert judge_record(_rec(tg="94", model=moe)) == []  # 21 GB x 10/512 a token: 39 GB/s
    c = bandwidth.check(_rec(tg="94", model=moe), catalog.default())
    assert c.bytes is not None and c.bytes.n == pytest.approx(21e9 * 10 / 512)
    named = ModelInfo(name="Qwen3 30B A3B", quant="Q4_K_M", params_stated="30500 M")  # a crowd row
    c = bandwidth.check(_rec(tg="5000", model=named), catalog.default())
    assert not c.judged and "mixture of experts" in (c.why_not or "") and judge_record(_rec(tg="5000", model=named)) \
        == []
    # named by its file, the architecture and size class llama-bench printed say what the name does not
    for arch, size in (("glm4moe", "106B.A12B"), ("llama", "8x7B"), ("dots1", "142B")):
        filed = ModelInfo(name="GLM-4.5-Air", arch=arch, size_label=size, quant="Q4_K_M", size_stated="73 GB")
        c = bandwidth.check(_rec(tg="22", model=filed), catalog.default())
        assert not c.judged and "mixture of experts" in (c.why_not or ""), (arch, size)
    dense = ModelInfo(name="Mistral-Small-3.1-24B", arch="llama", size_label="13B", quant="Q4_K_M", size_stated="14 GB")
    assert bandwidth.check(_rec(tg="22", model=dense), catalog.default()).judged


def test_a_crowd_row_with_parameters_only_is_bounded_by_its_quants_smallest_type() -> None:
    row = ModelInfo(name="Meta Llama 3.1 8B Instruct", quant="Q4_K_M", params_stated="8000 M")
    w, _ = bandwidth.read_bytes(_rec(model=row))
    assert w is not None and w.n == 8e9 * 4.5 / 8 and "Q4_K" in w.basis
    assert bandwidth.bits_per_weight("Q8_0") == 8.5 and bandwidth.bits_per_weight("nonsense") is None


def test_what_has_no_bandwidth_is_not_judged_and_says_why() -> None:
    cpu = bandwidth.check(_rec(tg="9999", gpus=()), catalog.default())
    assert not cpu.judged and "CPU only" in (cpu.why_not or "")
    unknown = bandwidth.check(_rec(tg="9999", gpus=("Some Accelerator 9000",)), catalog.default())
    assert not unknown.judged and "not in the device catalog" in (unknown.why_not or "")
    draft = _rec(tg="9999", config=LlamaConfig(extra_args=["-md", "draft.gguf"]))
    assert judge_record(draft) == [] and "speculative" in (bandwidth.check(draft, catalog.default()).why_not or "")


# --- the source's own summary ----------------------------------------------------------------------------------

README = """\
| GPU                        | Model     | tg 512 | tg 8192 | pp 8192 |
|----------------------------|-----------|--------|---------|---------|
| M1 7‑Core GPU 8GB          | 8B Q4_K_M | 10.20  | OOM     | OOM     |
|                            | 8B F16    | 5.00   | **4.00**| OOM     |
"""


def _notebook_row(test: str, value: str, quant: str = "Q4_K_M") -> SpeedRecord:
    return _rec(tg=value, gpus=("M1 7‑Core GPU",), samples=[Sample(category=test)],
                model=ModelInfo(name="LLaMA 3 8B", size_label="8B", quant=quant, size_stated="4.58 GiB"),
                source=Source(type="imported", citation="x", figure="xiongjiedai/M1_8GB#abc"))


def _sums() -> summaries.Summaries:
    out = summaries.Summaries(gpu_cells={"M1_8GB": "M1 7‑Core GPU 8GB"})
    for (gpu, model, test), claim in summaries.parse_readme_tables(README, "README.md").items():
        out.claims[("xiongjiedai", gpu, model, test)] = claim
    return out


def test_a_figure_its_source_summarises_as_oom_is_against_its_source(tmp_path: Path) -> None:
    rec = _notebook_row("tg8192", "3.05 ± 0.10")  # the notebook's spelling; the README's is "tg 8192"
    (fig,) = judge_record(rec, sums=_sums())
    assert fig.status == AGAINST_SOURCE and fig.reason == ("source README says OOM (README.md line 3: M1 7‑Core GPU "
                                                           "8GB, 8B Q4_K_M, tg 8192)")
    assert fig.verdicts[0].numbers == {"summary": "OOM", "summary_file": "README.md", "summary_line": 3}
    assert judge_record(rec) == []  # without the source's summary there is nothing to compare against
    _untouched(rec, tmp_path)


def test_a_figure_far_from_its_sources_figure_is_held_a_close_one_is_not() -> None:
    assert judge_record(_notebook_row("tg 512", "10.61"), sums=_sums()) == []  # 4 % apart: a rerun
    (fig,) = judge_record(_notebook_row("tg 512", "12.00"), sums=_sums())
    assert fig.reason.startswith("source README says 10.20 (README.md line 3") and "1.18x" in fig.reason
    (bold,) = judge_record(_notebook_row("tg 8192", "2.00", quant="F16"), sums=_sums())  # **4.00**
    assert "source README says **4.00**" in bold.reason


def test_the_kept_readme_is_the_pinned_one_and_summarises_the_real_m1_row(tmp_path: Path) -> None:
    sums = load_summaries_from(REPO / "imports")
    assert sums is not None
    claim = sums.claims[("xiongjiedai", "M1 7‑Core GPU 8GB", "8B Q4_K_M", "tg 8192")]
    assert (claim.text, claim.line) == ("OOM", 318)
    line = (REPO / "imports" / "xiongjiedai" / "README.md").read_text(encoding="utf-8").splitlines()[317]
    assert line.startswith("| M1 7‑Core GPU 8GB") and line.split("|")[6].strip() == "OOM"  # the tg 8192 column
    copy = tmp_path / "imports"
    shutil.copytree(REPO / "imports" / "xiongjiedai", copy / "xiongjiedai")
    readme = copy / "xiongjiedai" / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("| OOM     |", "| 11.0    |", 1), encoding="utf-8")
    with pytest.raises(CollectorError, match=r"README\.md: its sha256 is not"):
        load_summaries_from(copy)
    assert load_summaries_from(tmp_path / "nowhere") is None


def test_a_posts_average_that_is_not_the_average_of_its_own_figures_is_held(tmp_path: Path) -> None:
    samples = [Sample(category=c, tg_tps=[v]) for c, v in (("a", 92.7), ("b", 89.3), ("c", 87.2))]
    post = Source(type="imported", citation="a post", quotes=["| AVERAGE | 80.0 t/s |"], figure="post#1")
    stated = Stat(mean=80.0, text="80.0")
    rec = _rec(tg=None, samples=samples, source=post, summary=Summary(tg_tps=stated))
    (fig,) = judge_record(rec)
    assert fig.status == AGAINST_SOURCE and fig.verdicts[0].rule == "post's own average"
    assert "states an average of 80.0; its 3 per-test figures average 89.7" in fig.reason
    _untouched(rec, tmp_path)
    ok = _rec(tg=None, samples=samples, source=post, summary=Summary(tg_tps=Stat(mean=89.7, text="89.7")))
    assert judge_record(ok) == []


def test_a_zero_rate_is_invalid(tmp_path: Path) -> None:
    rec = _rec(tg="12.5", pp="0", gpus=())
    (fig,) = judge_record(rec)
    assert (fig.figure, fig.status, fig.text) == ("pp", INVALID, "0")
    assert fig.reason == "pp of 0: a time or rate cannot be zero or negative"
    _untouched(rec, tmp_path)


# --- the crowd -------------------------------------------------------------------------------------------------


def _crowd(values: list[str], name: str = "Meta Llama 3.1 8B Instruct", gpu: str = "NVIDIA GeForce RTX 5090") \
        -> list[AnyRecord]:
    model = ModelInfo(name=name, quant="Q4_K_M", params_stated="8000 M")
    return [_rec(tg=v, gpus=(gpu,), model=model, source=Source(type="imported", citation="c", figure=f"ls#t-{i}",
                                                               runtime="llamafile (LocalScore)"))
            for i, v in enumerate(values)]


def test_a_crowd_group_is_one_summary_its_spread_flagged_and_its_outlier_never_a_pick(tmp_path: Path) -> None:
    recs = _crowd(["43.2", "45.8", "106.0"])
    j = judge_records(recs)
    g = j.group(recs[0].id)
    assert g is not None and (g.n, g.median, g.min, g.max) == (3, 45.8, 43.2, 106.0)
    assert g.spread == pytest.approx(106.0 / 43.2) and g.wide and WIDE == 1.5
    assert [r.contradicted for r in g.results] == [False, False, True]
    assert not j.pickable(recs[2].id) and j.pickable(recs[0].id) and j.pickable(recs[1].id)
    assert g.rank_value == pytest.approx(44.5) and g.ranked_on == "median of 2 consistent of 3 (results 43.2-106)"
    for r in recs:
        _untouched(r, tmp_path)  # type: ignore[arg-type]


def test_two_results_that_disagree_contradict_each_other_and_leave_the_device_unranked() -> None:
    recs = _crowd(["100", "200"])
    j = judge_records(recs)
    g = j.group(recs[0].id)
    assert g is not None and g.rank_value is None and g.ranked_on == "unranked: 2 results 100-200 (2x)"
    assert not any(j.pickable(r.id) for r in recs)
    tight = _crowd(["100", "110", "120"])
    g2 = judge_records(tight).group(tight[0].id)
    assert g2 is not None and not g2.wide and g2.rank_value == 110 and g2.ranked_on == "median of 3"


def test_a_held_figure_stays_listed_in_its_group_but_takes_no_part_in_it() -> None:
    recs = _crowd(["100", "110", "9000"], gpu=RTX4090)  # 9000 t/s of an 8B Q4_K_M: 40 TB/s
    j = judge_records(recs)
    g = j.group(recs[0].id)
    assert g is not None and len(g.results) == 3 and g.n == 2 and g.max == 110 and not g.wide
    assert [r.held for r in g.results] == [False, False, True] and not j.pickable(recs[2].id)
    assert [f.figure for f in j.flagged()] == ["tg"] and j.held_keys() == {(recs[2].id, "tg")}
    ours, ours_fast = _measured([150.0, 152.0]), _measured([9000.0, 9100.0])  # pooled elsewhere, in no group
    j2 = judge_records([*recs, ours, ours_fast])
    assert j2.group(ours.id) is None and j2.pickable(ours.id) and not j2.pickable(ours_fast.id)
    (fig,) = j2.held[ours_fast.id]
    assert fig.verdicts[0].numbers["bytes_basis"] == "the GGUF's tensors (model.bytes_per_token)"


# --- names -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, why", [("Model Hf", "only folder or file words"), ("hub", "only folder or file words"),
                                       ("Dir", "only folder or file words"), ("active", "only folder or file words"),
                                       ("Models", "only folder or file words"), (".", "no letters"),
                                       ("C:\\LLM_MODELS\\mistralai", "a path"), ("/models/x.gguf", "a path")])
def test_a_name_that_names_no_model_is_an_unnamed_model(name: str, why: str) -> None:
    n = model_name(name, "7200 M")
    assert n.unnamed and n.why == why and n.label == f"unnamed model (as submitted: {name})"
    assert model_name(name, "4600 M").key != n.key  # two unnamed results are never one model


def test_junk_named_records_are_listed_unnamed_and_never_share_a_group(tmp_path: Path) -> None:
    a, b = _crowd(["50"], name="Model Hf")[0], _crowd(["90"], name="hub")[0]
    j = judge_records([a, b])
    assert j.model_label(a.id) == "unnamed model (as submitted: Model Hf)"
    assert j.group(a.id) is not j.group(b.id)
    assert a.model.name == "Model Hf"  # the record keeps what was submitted
    _untouched(a, tmp_path)  # type: ignore[arg-type]


def test_spellings_of_one_model_fold_and_other_checkpoints_stay_apart() -> None:
    assert model_key("Gemma-3-1B-It") == model_key("Gemma 3 1b It") == "gemma 3 1b it"
    assert model_key("Qwen Qwen3 30B A3B") == model_key("Qwen3-30B-A3B") == "qwen3 30b a3b"
    assert model_key("driaforall.Dria Agent A 3B") == model_key("Dria Agent A 3B")
    assert model_key("Qwen2.5 Coder 7B Instruct GGUF") == model_key("Qwen2.5-Coder-7B-Instruct")
    assert model_key("qwen2.5-14b-instruct") == model_key("Qwen2.5 14B Instruct")
    assert model_key("Gemma 3 4b It Qat") != model_key("Gemma 3 4b It")  # a QAT checkpoint is another model
    bnb = model_name("Llama 3 8b Bnb 4bit")  # names Llama 3 8B re-quantized from a bitsandbytes 4-bit copy
    assert not bnb.unnamed and bnb.key == "llama 3 8b bnb 4bit" != model_key("LLaMA 3 8B")
    spellings = ("Qwen2.5 Coder 7B Instruct GGUF", "Qwen2.5 Coder 7B Instruct GGUF", "Qwen2.5-Coder-7B-Instruct",
                 "Qwen Qwen3 30B A3B", "Qwen Qwen3 30B A3B", "Qwen3-30B-A3B")  # the bare one, though fewer use it
    labels = readable_labels([model_name(n) for n in spellings])
    assert labels == {"qwen2.5 coder 7b instruct": "Qwen2.5-Coder-7B-Instruct", "qwen3 30b a3b": "Qwen3-30B-A3B"}
    recs = _crowd(["40", "42"], name="Gemma 3 1b It") + _crowd(["41"], name="Gemma-3-1B-It")
    j = judge_records(recs)
    assert j.group(recs[0].id) is j.group(recs[2].id) and {j.model_label(r.id) for r in recs} == {"Gemma 3 1b It"}


def test_test_names_have_one_spelling() -> None:
    assert normalise_test("tg512") == normalise_test("tg 512") == "tg 512"
    assert normalise_test("pp 512") == normalise_test("pp512") == normalise_test("PP512") == "pp 512"
    assert normalise_test("pp512+tg128") == "pp 512 + tg 128" and normalise_test("tg128 @ d4096") == "tg 128 @ d4096"
    assert normalise_test("  Coding  Tasks ") == "Coding Tasks"


# --- one claim, several posts ----------------------------------------------------------------------------------


def _post(source: str, text: str = "~94", ctx: int | None = 168000, **kw: object) -> SpeedRecord:
    model = ModelInfo(name="Qwen3-Coder-Next", quant="IQ2_XS", size_stated="21 GB", moe=True, n_experts=512,
                      n_experts_used=10, **kw)  # type: ignore[arg-type]
    return _rec(tg=text, gpus=("NVIDIA RTX 4090",), model=model, config=LlamaConfig(ctx_size=ctx, cache_type_k="q8_0"),
                source=Source(type="imported", citation=f"{source}.txt: a post", quotes=[f"{text} t/s"],
                              figure=f"{source}#fig"))


def test_one_claim_repeated_by_two_posts_is_one_claim_citing_both(tmp_path: Path) -> None:
    first, again = _post("000_a"), _post("002_b", repo="owner/Qwen3-Coder-Next-GGUF")  # one states more than the other
    other_ctx, same_post = _post("003_c", ctx=200000), _post("000_a")
    j = judge_records([first, again, other_ctx, same_post])
    (claim,) = j.claims
    assert claim.records == (first.id, again.id) and claim.text == "~94"
    assert claim.sources == ("000_a.txt: a post", "002_b.txt: a post")
    g = j.group(first.id)
    assert g is not None and [r.record_id for r in g.results] == [first.id, same_post.id]  # counted once
    assert g.results[0].also == (again.id,) and not j.pickable(again.id)
    _untouched(again, tmp_path)


def test_validate_prints_each_held_figure_with_its_file_and_keeps_its_exit_status(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rec = _rec(tg="500.00")
    path = store.save_record(rec, data)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    code, out = invoke(["validate", str(data)])
    assert code == 0, out
    assert f"held {path}: tg 500.00: implies 2.46 TB/s of weight reads" in " ".join(out.split())
    assert "1 figures held back (against the bandwidth bound, zero values; collector/judge)" in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # validate reads, never writes
    code, out = invoke(["validate", str(data), "--imports", str(REPO / "imports")])
    assert code == 0 and "zero values and imports/xiongjiedai/README.md" in out
