"""The Python API (issue 13 items 1-2): ``import avsbench as avs``, converters, round trips."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

import avsbench as avs
from avsbench import interop
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.errors import InputFormatError, MissingExtraError

REPO = Path(__file__).resolve().parent.parent
API_NAMES = ("evaluate", "score_runs", "compare", "fuse", "Qrels", "RunFile", "topics", "load_model", "rank")

# A notebook session: score the two bundled 2021 runs, per-topic frame, compare; torch never imported.
NOTEBOOK = """
import json, sys
import avsbench as avs
from avsbench.data.resources import bundled_runs
runs = bundled_runs()
scored = avs.score_runs(runs)
frame = avs.evaluate(runs[0]).to_dataframe("wide")
long = pd_frame = avs.evaluate(runs[1]).to_dataframe()
cmp = avs.compare(runs)
print(json.dumps({
    "means": [s.result.inf_ap for s in scored],
    "topics": len(frame), "columns": list(frame.columns[:2]), "long_rows": len(long),
    "per_year": cmp.per_year["2021"].tolist(), "p": float(cmp.significance["p"].iloc[0]),
    "torch": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "safetensors")),
}))
"""


@pytest.fixture(scope="module")
def rucmm() -> avs.RunFile:
    return avs.RunFile.read(bundled_runs()[0])


@pytest.fixture(scope="module")
def qrels21() -> avs.Qrels:
    path = bundled_qrels("tv21")
    assert path is not None
    return avs.Qrels.read(path)


def scores_of(result: avs.EvalResult) -> dict:
    return {"summary": result.measures(), "per_topic": {t: r.measures() for t, r in result.per_topic.items()}}


def test_notebook_session_without_torch(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["torch"] == []
    assert out["means"] == pytest.approx([0.3430344607921577, 0.3489861781479468], abs=1e-15)
    assert out["per_year"] == out["means"]
    assert out["topics"] == 20 and out["columns"] == ["infAP", "infNDCG"]
    assert out["long_rows"] == 20 * 25
    assert 0 < out["p"] <= 1


def test_import_avsbench_is_light() -> None:
    code = (
        "import sys, avsbench; print(sorted(m for m in sys.modules if m.startswith(('avsbench', 'torch', 'pandas'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.stdout.strip() == "['avsbench']"


@pytest.mark.parametrize("name", API_NAMES)
def test_api_names_have_docstrings_with_an_example(name: str) -> None:
    value = getattr(avs, name)
    assert value.__doc__
    if not isinstance(value, type):
        assert "avs." in value.__doc__
    assert name in dir(avs)


def test_all_lists_every_lazy_name() -> None:
    assert sorted(avs.__all__) == sorted(["__version__", *avs._LAZY])


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no_such"):
        avs.no_such  # noqa: B018


def test_evaluate_matches_score_runs_and_missing_as_zero(rucmm: avs.RunFile, qrels21: avs.Qrels) -> None:
    full = avs.evaluate(rucmm)
    assert full.inf_ap == avs.score_runs([bundled_runs()[0]])[0].result.inf_ap
    dropped = {t: lines for t, lines in rucmm.topics.items() if t != "1661"}
    partial = avs.RunFile(name="partial", topics=dropped)
    nist = avs.evaluate(partial, qrels21)
    as_zero = avs.evaluate(partial, qrels21, missing_as_zero=True)
    assert nist.num_topics == 19 and as_zero.num_topics == 20
    assert as_zero.inf_ap == pytest.approx(nist.inf_ap * 19 / 20, rel=1e-12)
    assert as_zero.to_dataframe("wide").loc["1661", "infAP"] == 0.0


def test_evaluate_takes_frames_and_dicts(rucmm: avs.RunFile, qrels21: avs.Qrels) -> None:
    reference = scores_of(avs.evaluate(rucmm, qrels21))
    assert scores_of(avs.evaluate(rucmm.to_dataframe(), qrels21)) == reference
    assert scores_of(avs.evaluate(rucmm.to_dict(), qrels21)) == reference


def test_result_frames(rucmm: avs.RunFile, qrels21: avs.Qrels) -> None:
    result = avs.evaluate(rucmm, qrels21)
    long = result.to_dataframe("long")
    wide = result.to_dataframe("wide")
    assert list(long.columns) == ["run", "topic", "measure", "value"]
    assert wide.index.tolist() == list(result.per_topic)
    assert wide.loc["1661", "infAP"] == result.per_topic["1661"].inf_ap
    pivot = long.pivot(index="topic", columns="measure", values="value")
    assert pivot.loc["1662", "infNDCG"] == wide.loc["1662", "infNDCG"]
    assert wide["infAP"].mean() == pytest.approx(result.inf_ap, rel=1e-12)
    metrics = list(result.to_metrics())
    assert metrics[0] == interop.Metric("1661", "infAP", result.per_topic["1661"].inf_ap)
    assert len(metrics) == len(long)
    with pytest.raises(ValueError):
        result.to_dataframe("tall")


def test_run_round_trips_keep_scores(rucmm: avs.RunFile, qrels21: avs.Qrels) -> None:
    reference = scores_of(avs.evaluate(rucmm, qrels21))
    frame = rucmm.to_dataframe()
    assert list(frame.columns) == ["topic", "shot", "score"] and len(frame) == len(rucmm)
    via_frame = avs.RunFile.from_dataframe(frame, name=rucmm.name)
    via_dict = avs.RunFile.from_dict(via_frame.to_dict(), name=rucmm.name)
    via_docs = interop.run_from_scored_docs(interop.run_to_scored_docs(via_dict), name=rucmm.name)
    for run in (via_frame, via_dict, via_docs):
        assert scores_of(avs.evaluate(run, qrels21)) == reference
    assert list(via_frame.entries()) == list(rucmm.entries())
    renamed = frame.rename(columns={"topic": "query_id", "shot": "doc_id"})
    assert list(avs.RunFile.from_dataframe(renamed).entries()) == list(rucmm.entries())


def test_qrels_round_trips_keep_scores(rucmm: avs.RunFile, qrels21: avs.Qrels) -> None:
    reference = scores_of(avs.evaluate(rucmm, qrels21))
    records = list(qrels21.to_records())
    assert records[0] == interop.QrelsRecord("1661", "shot00008_16", "3", -1)
    assert scores_of(avs.evaluate(rucmm, avs.Qrels.from_records(records))) == reference
    assert scores_of(avs.evaluate(rucmm, avs.Qrels.from_records(map(tuple, records)))) == reference
    frame = qrels21.to_dataframe()
    assert list(frame.columns) == ["topic", "shot", "stratum", "judgment"]
    assert scores_of(avs.evaluate(rucmm, interop.qrels_from_dataframe(frame))) == reference


def test_ir_measures_tuples_round_trip(rucmm: avs.RunFile) -> None:
    # qrels without strata: one fully judged stratum both ways
    judged = avs.Qrels.from_records([("1661", "s1", "1", 1), ("1661", "s2", "1", 0), ("1661", "s3", "1", 2)])
    run = avs.RunFile.from_dict({"1661": {"s1": 3.0, "s2": 2.0, "s3": 1.0, "s4": 0.5}})
    tuples = list(interop.qrels_to_ir_measures(judged))
    assert tuples == [interop.Qrel("1661", "s1", 1), interop.Qrel("1661", "s2", 0), interop.Qrel("1661", "s3", 2)]
    back = interop.qrels_from_ir_measures(tuples)
    assert scores_of(avs.evaluate(run, back)) == scores_of(avs.evaluate(run, judged))
    assert avs.evaluate(run, back).inf_ap == pytest.approx((1 / 1 + 2 / 3) / 2)  # plain AP over the judged shots
    docs = list(interop.run_to_scored_docs(run))
    assert docs[0] == interop.ScoredDoc("1661", "s1", 3.0)
    assert scores_of(avs.evaluate(interop.run_from_scored_docs(docs), back)) == scores_of(avs.evaluate(run, back))


def test_stratified_qrels_lose_unsampled_shots_going_out(qrels21: avs.Qrels) -> None:
    tuples = list(interop.qrels_to_ir_measures(qrels21))
    records = list(qrels21.to_records())
    assert len(tuples) == sum(1 for r in records if r.judgment >= 0) < len(records)


def test_bad_frames_and_records_are_clear_errors() -> None:
    with pytest.raises(InputFormatError, match="lacks column"):
        avs.RunFile.from_dataframe(pd.DataFrame({"topic": ["1661"], "shot": ["s"]}))
    with pytest.raises(InputFormatError, match="row 1: score"):
        avs.RunFile.from_dataframe(
            pd.DataFrame({"topic": ["1", "1"], "shot": ["a", "b"], "score": [1.0, float("nan")]})
        )
    with pytest.raises(InputFormatError, match="not an integer"):
        avs.Qrels.from_records([("1661", "s1", "1", 0.5)])
    with pytest.raises(InputFormatError, match="whitespace"):
        avs.Qrels.from_records([("1661", "shot 1", "1", 1)])


def test_ranx_bridge_with_a_fake_module(
    monkeypatch: pytest.MonkeyPatch, rucmm: avs.RunFile, qrels21: avs.Qrels
) -> None:
    class FakeRun:
        def __init__(self, run: dict, name: str | None = None) -> None:
            self.run, self.name = run, name

        def to_dict(self) -> dict:
            return self.run

    class FakeQrels:
        def __init__(self, qrels: dict) -> None:
            self.qrels = qrels

        def to_dict(self) -> dict:
            return self.qrels

    monkeypatch.setitem(sys.modules, "ranx", types.SimpleNamespace(Run=FakeRun, Qrels=FakeQrels))
    ranx_run = interop.to_ranx_run(rucmm)
    assert ranx_run.name == rucmm.name and ranx_run.run == rucmm.to_dict()
    back = interop.from_ranx_run(ranx_run)
    assert scores_of(avs.evaluate(back, qrels21)) == scores_of(avs.evaluate(rucmm, qrels21))
    ranx_qrels = interop.to_ranx_qrels(qrels21)
    assert all(v >= 0 for docs in ranx_qrels.qrels.values() for v in docs.values())
    assert set(interop.from_ranx_qrels(ranx_qrels).topics) == set(qrels21.topics)


def test_ranx_missing_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, rucmm: avs.RunFile) -> None:
    monkeypatch.setitem(sys.modules, "ranx", None)
    with pytest.raises(MissingExtraError, match="pip install ranx"):
        interop.to_ranx_run(rucmm)


def test_model_calls_without_torch_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"avsbench\[model\]"):
        avs.load_model("no-model")
    with pytest.raises(MissingExtraError, match=r"avsbench\[model\]"):
        avs.rank("no-model", 2021)


def test_topics_and_fuse() -> None:
    topics = avs.topics(2021)
    assert len(topics) == 20 and topics.numbers[0] == 661
    fused = avs.fuse(bundled_runs(), method="rrf")
    assert fused.topic_ids == avs.RunFile.read(bundled_runs()[0]).topic_ids
    assert 0 < avs.evaluate(fused).inf_ap < 1


def test_api_takes_ir_measures_tuples_records_and_frames(rucmm: avs.RunFile, qrels21: avs.Qrels) -> None:
    reference = scores_of(avs.evaluate(rucmm, qrels21))
    docs = list(interop.run_to_scored_docs(rucmm))
    assert scores_of(avs.evaluate(docs, qrels21)) == reference
    assert scores_of(avs.evaluate(rucmm, list(qrels21.to_records()))) == reference
    assert scores_of(avs.evaluate(rucmm, qrels21.to_dataframe())) == reference
    judged = [interop.Qrel("1661", "s1", 1), interop.Qrel("1661", "s2", 0)]
    run = {"1661": {"s2": 2.0, "s1": 1.0}}
    assert avs.evaluate(run, judged).inf_ap == pytest.approx(0.5, abs=1e-4)
    assert avs.evaluate(run, [("1661", "s1", 1), ("1661", "s2", 0)]).inf_ap == pytest.approx(0.5, abs=1e-4)
    cmp = avs.compare([rucmm, rucmm.to_dict()], qrels=list(qrels21.to_records()), year=2021, permutations=100)
    assert cmp.per_year["2021"].tolist() == [pytest.approx(avs.evaluate(rucmm, qrels21).inf_ap)] * 2


def test_api_rejects_what_it_cannot_read() -> None:
    with pytest.raises(avs.AvsbenchError, match="cannot read a run"):
        avs.evaluate(42, [("1661", "s1", 1)])  # type: ignore[arg-type]
    with pytest.raises(avs.AvsbenchError, match="cannot read qrels"):
        avs.evaluate({"1661": {"s1": 1.0}}, 3.5)  # type: ignore[arg-type]
