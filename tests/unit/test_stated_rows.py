"""Imported figures counted as a reader would: one row per configuration of a source, headed by its own summary;
one row for a figure however many posts state it (citing each)."""

from __future__ import annotations

from collector.publish.rows.frame import build_frames
from collector.records.schema import CpuInfo, Host, Stat
from fixtures.records.factory import gpu, imported, model, stated_speed

HOST = Host(cpu=CpuInfo(model="x"), gpus=[gpu("NVIDIA GeForce RTX 4090")])
FLAGS = dict(ctx_size=168000, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="on")


def test_one_configuration_of_one_source_is_one_row_headed_by_its_average() -> None:
    m = model("Coder", "IQ3_XXS", 31_000_000_000)
    src = "000_fixture.txt: IQ2 vs IQ3 (fixture)"
    recs = [stated_speed(HOST, m, imported(src, "000_fixture#test-types", quotes=["| AVERAGE | 37.5 t/s |"]),
                         Stat(mean=37.5, text="37.5"), **FLAGS),
            stated_speed(HOST, m, imported(src, "000_fixture#agentic", quotes=["| Speed | 44.6 t/s |"]),
                         Stat(stated=44.6, text="44.6"), **FLAGS),
            stated_speed(HOST, m, imported(src, "000_fixture#128k", quotes=["| 128K | 44.1 t/s |"]),
                         Stat(stated=44.1, text="44.1"), **{**FLAGS, "ctx_size": None})]
    rows = build_frames(recs).rows
    assert sorted((r.tg.text, [a.tg.text for a in r.also]) for r in rows) == [("37.5", ["44.6"]), ("44.1", [])]


def test_a_figure_repeated_by_a_second_post_is_one_row_citing_both() -> None:
    m = model("Coder", "UD-IQ2_XXS", 26_000_000_000)
    first = stated_speed(HOST, m, imported("001_fixture.txt: original (fixture)", "001_fixture#iq2",
                                           quotes=["Overall Speed 21.78 t/s"]), Stat(mean=21.78, n=5, text="21.78"),
                         **FLAGS)
    again = stated_speed(HOST, m, imported("002_fixture.txt: update (fixture)", "002_fixture#iq2",
                                           quotes=["Overall Speed 21.78 t/s"]), Stat(mean=21.78, n=5, text="21.78"),
                         **FLAGS)
    other = stated_speed(HOST, m, imported("002_fixture.txt: update (fixture)", "002_fixture#new",
                                           quotes=["22 t/s"]), Stat(stated=22.0, text="22"), **{**FLAGS,
                                                                                               "ctx_size": 200000})
    rows = build_frames([first, again, other]).rows
    assert len(rows) == 2
    row = next(r for r in rows if r.tg.text == "21.78")
    assert row.rec.source.figure == "001_fixture#iq2" and [r.rec.source.figure for r in row.repeated] == [
        "002_fixture#iq2"]
