"""Property-based checks of the scorer (hypothesis): invariants of sample_eval's rules, and bit-for-bit
agreement of the vectorised port with a plain scalar reading of the spec (tests/sample_eval_reference.py)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sample_eval_reference import reference_evaluate

from avsbench.data.qrels import Qrels
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.runs import RunFile
from avsbench.errors import EvaluationError
from avsbench.eval.sample_eval import evaluate

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOPICS = ["1501", "1502", "591", "1591"]
SHOTS = [f"shot{v}_{n}" for v in (1, 2, 9, 10, 35345) for n in (1, 2, 10)]
STRATA = ["1", "2", "3", "10"]
SCORES = ["1", "2", "2.5", "3", "7e-1", "-1", "1e3", "0.25"]  # few values: many ties


@st.composite
def qrels_texts(draw) -> str:
    lines = []
    for topic in draw(st.lists(st.sampled_from(TOPICS), min_size=1, max_size=3, unique=True)):
        for shot in draw(st.lists(st.sampled_from(SHOTS), min_size=1, max_size=14)):  # repeats: duplicate records
            judgment = draw(st.sampled_from(["-1", "-1", "0", "0", "1", "1", "2"]))
            lines.append(f"{topic} 0 {shot} {draw(st.sampled_from(STRATA))} {judgment}")
    return "\n".join(lines) + "\n"


@st.composite
def run_lines(draw, unique: bool) -> list[tuple[str, str, str]]:
    """(topic, shot, score) lines; topics partly outside the qrels topics, shots partly outside the pool."""
    pool = SHOTS + [f"shot{v}_99" for v in (3, 30)]
    lines = []
    for topic in draw(st.lists(st.sampled_from(TOPICS + ["1777"]), min_size=1, max_size=4, unique=True)):
        shots = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=20, unique=unique))
        lines.extend((topic, shot, draw(st.sampled_from(SCORES))) for shot in shots)
    return lines


def trec(lines, ranks=None) -> bytes:
    ranks = ranks or range(1, len(lines) + 1)
    return "".join(f"{t} Q0 {s} {r} {sc} tag\n" for (t, s, sc), r in zip(lines, ranks)).encode()


def measures(qrels_text: str, run_bytes: bytes, **kwargs):
    """Per-topic and summary measures, or None when no run topic is in the qrels."""
    try:
        result = evaluate(Qrels.from_bytes(qrels_text.encode()), RunFile.from_bytes(run_bytes)[0], **kwargs)
    except EvaluationError:
        return None
    return {t: r.measures() for t, r in result.per_topic.items()}, result.measures()


@SETTINGS
@given(qrels_texts(), run_lines(unique=False), st.sampled_from([1000, 7, 3]))
def test_agrees_bit_for_bit_with_the_scalar_reference(qrels_text, lines, max_results):
    ours = measures(qrels_text, trec(lines), max_results=max_results)
    ref = reference_evaluate(qrels_text, trec(lines).decode(), max_results=max_results)
    if ours is None:
        assert ref["summary"] is None
    else:
        assert ours == (ref["per_topic"], ref["summary"])


@SETTINGS
@given(qrels_texts(), run_lines(unique=True), st.randoms(use_true_random=False))
def test_order_of_input_lines_does_not_matter(qrels_text, lines, rnd):
    shuffled = list(lines)
    rnd.shuffle(shuffled)
    assert measures(qrels_text, trec(shuffled)) == measures(qrels_text, trec(lines))


@SETTINGS
@given(qrels_texts(), run_lines(unique=False), st.data())
def test_rank_column_is_ignored(qrels_text, lines, data):
    ranks = data.draw(st.lists(st.integers(-5, 10**6), min_size=len(lines), max_size=len(lines)))
    assert measures(qrels_text, trec(lines, ranks)) == measures(qrels_text, trec(lines))


@SETTINGS
@given(qrels_texts(), run_lines(unique=True))
def test_ties_resolve_as_score_desc_then_shot_id_desc(qrels_text, lines):
    explicit = []
    for topic in dict.fromkeys(t for t, _, _ in lines):
        mine = sorted(((float(sc), s) for t, s, sc in lines if t == topic), reverse=True)
        explicit.extend((topic, s, str(len(mine) - i)) for i, (_, s) in enumerate(mine))  # strictly decreasing
    assert measures(qrels_text, trec(explicit)) == measures(qrels_text, trec(lines))


@functools.lru_cache(maxsize=1)
def tv21() -> Qrels:
    return Qrels.read(bundled_qrels("tv21"))


@functools.lru_cache(maxsize=1)
def rucmm_1661() -> list[tuple[str, str, str]]:
    run = RunFile.read(bundled_runs()[0])
    lines = run.topics["1661"]
    return [("1661", s, repr(sc)) for s, sc in zip(lines.shots, lines.scores)]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7475), st.integers(1, 300), st.floats(-10.0, 8999.99)), min_size=1, max_size=60)
)
def test_only_the_first_1000_distinct_shots_count(extra):
    base = rucmm_1661()  # 1000 shots, scores 9999..9000; every extra line scores lower
    pool = tv21()["1661"].judgment
    added = [("1661", f"shot{v:05d}_{n}", repr(sc)) for v, n, sc in extra]
    added = [line for line in added if line[1] not in {s for _, s, _ in base}]
    full = evaluate(tv21(), RunFile.from_bytes(trec(added + base))[0]).per_topic["1661"]
    top = evaluate(tv21(), RunFile.from_bytes(trec(base))[0]).per_topic["1661"]
    assert full.num_ret == len(added) + 1000 and full.num_ranked == 1000
    assert {k: v for k, v in full.measures().items() if k != "num_ret"} == {
        k: v for k, v in top.measures().items() if k != "num_ret"
    }
    assert any(s in pool for _, s, _ in base)


def test_the_cut_off_keeps_the_best_scored_not_the_first_lines():
    base = rucmm_1661()
    late_best = [("1661", s, str(20000 - i)) for i, (_, s, _) in enumerate(base[-10:])]  # last 10 lines, now the best
    moved = evaluate(tv21(), RunFile.from_bytes(trec(base[:-10] + late_best))[0]).per_topic["1661"]
    reordered = evaluate(tv21(), RunFile.from_bytes(trec(late_best + base[:-10]))[0]).per_topic["1661"]
    assert moved == reordered
    original = evaluate(tv21(), RunFile.from_bytes(trec(base))[0]).per_topic["1661"]
    assert moved.inf_ap != original.inf_ap and moved.num_ranked == 1000


@pytest.mark.parametrize("max_results", [1, 2])
def test_max_results_counts_distinct_shots_after_sorting(max_results):
    qrels = "1 0 a 1 1\n1 0 b 1 0\n"
    lines = [("1", "b", "1"), ("1", "a", "2"), ("1", "a", "0.5")]
    per_topic, summary = measures(qrels, trec(lines), max_results=max_results)
    assert summary["num_ret"] == max_results and per_topic["1"]["num_ret"] == 3
