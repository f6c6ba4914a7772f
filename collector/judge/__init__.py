"""Judge every figure before a reader sees it: physics, the source's own summary, the crowd's spread, names.

Pure functions over records (collector.records) and the device catalog (collector.catalog): a verdict is computed,
never written into a record, whose stated figures stay exactly as their run or source wrote them.

    from collector.judge import judge_records, load_summaries_from
    j = judge_records(records, sums=load_summaries_from(Path("imports")))   # catalog: the packaged one
    j.flagged()                  # [FigureVerdict]: every held figure (the Flagged figures page)
    j.figure(rec.id, "tg")       # FigureVerdict | None: .status, .reason ("implies 5.57 TB/s ...; source README
                                 # says OOM ..."), .verdicts[i].numbers, .value/.text as the record states them
    j.pickable(rec.id, "tg")     # False: held, contradicted by its device's other results, or a repeated claim
    j.groups                     # [CrowdGroup]: one device + model + quant + runtime + test + settings, with
                                 # median, n, min, max, spread, wide, rank_value (None: list unranked), ranked_on
    j.group(rec.id, "tg")        # the record's group
    j.claims                     # [RepeatedClaim]: one claim stated by several posts (the first record stands)
    j.model_label(rec.id)        # "Gemma 3 1b It" for every spelling; "unnamed model (as submitted: Model Hf)"

    judge_record(rec, catalog, sums)   # [FigureVerdict] of one record (what `collector validate` prints)
    normalise_test("tg512") == "tg 512"; model_name("Model Hf").unnamed

Modules: bandwidth (the tg bound, MARGIN), summaries (the source's own summary), crowd (WIDE), claims, names,
verdict (statuses and words), gate (the rules together).
"""

from collector.judge.bandwidth import MARGIN
from collector.judge.claims import RepeatedClaim
from collector.judge.crowd import WIDE, CrowdGroup
from collector.judge.gate import Judgement, beside, judge_record, judge_records
from collector.judge.gate import load as load_summaries_from
from collector.judge.names import ModelName, model_key, model_name, normalise_test
from collector.judge.summaries import SUMMARY_MARGIN, Summaries
from collector.judge.verdict import AGAINST_SOURCE, HELD, IMPLAUSIBLE, INVALID, FigureVerdict, Verdict

__all__ = ["AGAINST_SOURCE", "HELD", "IMPLAUSIBLE", "INVALID", "MARGIN", "SUMMARY_MARGIN", "WIDE", "CrowdGroup",
           "FigureVerdict", "Judgement", "ModelName", "RepeatedClaim", "Summaries", "Verdict", "beside", "judge_record",
           "judge_records", "load_summaries_from", "model_key", "model_name", "normalise_test"]
