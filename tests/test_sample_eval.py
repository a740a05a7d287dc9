"""The sample_eval port: byte-for-byte parity with NIST's script on every golden case, and the
behaviours of the specification (shared/docs/sample_eval.md) checked one by one."""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

import pytest

from avsbench.data.qrels import Qrels
from avsbench.data.resources import resource_path
from avsbench.data.runs import RunFile
from avsbench.errors import ConfigError, EvaluationError
from avsbench.eval.sample_eval import DEFAULT_CUTOFFS, evaluate, format_sample_eval

GOLDEN = Path(__file__).parent / "golden" / "sample_eval"
BUNDLED = "../../../avsbench/resources/"  # how cases.tsv names the package's bundled qrels and runs


def golden_path(relative: str) -> Path:
    """A file named in cases.tsv: under the golden folder, or a bundled file of the (installed) package."""
    if relative.startswith(BUNDLED):
        return resource_path(*relative[len(BUNDLED) :].split("/"))
    return GOLDEN / relative


def _cases() -> list[dict[str, str]]:
    with open(GOLDEN / "cases.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


CASES = _cases()


@functools.cache
def golden_qrels(relative: str) -> Qrels:
    return Qrels.read(golden_path(relative))


def test_golden_set_is_complete():
    assert len(CASES) == 42
    for case in CASES:
        for column in ("qrels", "run", "expected_q", "expected_all"):
            assert golden_path(case[column]).is_file(), case[column]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case_matches_perl_bytes(case):
    result = evaluate(golden_qrels(case["qrels"]), RunFile.read(golden_path(case["run"])))
    assert format_sample_eval(result, per_topic=True) == (GOLDEN / case["expected_q"]).read_text()
    assert format_sample_eval(result, per_topic=False) == (GOLDEN / case["expected_all"]).read_text()


def _toy(run_text: str, qrels_text: str | None = None, **kwargs):
    qrels = Qrels.from_bytes((qrels_text or (GOLDEN / "qrels" / "toy.qrels").read_text()).encode())
    run = RunFile.from_bytes(run_text.encode(), "toy.run", lenient=kwargs.pop("lenient_read", False))[0]
    return evaluate(qrels, run, **kwargs)


TOY_RUN = "7 Q0 x 1 4 demo\n7 Q0 a 2 3 demo\n7 Q0 e 3 2 demo\n7 Q0 c 4 1 demo\n"


def test_toy_example_hand_computed_values():
    result = _toy(TOY_RUN)
    topic = result.per_topic["7"]
    assert topic.inum_rel == 3.0  # R-hat = 1*2/2 + 1*4/2
    assert topic.inum_rel_ret == pytest.approx(0.99998 + 2 * 0.99998, abs=1e-5)
    assert topic.inf_ap == pytest.approx((1 / 3) * 0.5 + (2 / 3) * 0.583328, abs=1e-5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    dcg = (1 / 3) * (1 / math.log2(3)) + (2 / 3) * (1 / math.log2(5))
    assert topic.inf_ndcg == pytest.approx(3 * dcg / idcg, abs=1e-5)
    assert topic.precision_at[5] == pytest.approx(2.99994 / 5, abs=1e-5)
    assert result.iprec_at_recall[:10] == pytest.approx((2.99994 / 4,) * 10, abs=1e-5)
    assert result.iprec_at_recall[10] == 0.0
    assert (topic.num_ret, topic.num_ranked, result.num_ret) == (4, 4, 4)


def test_ties_are_broken_by_descending_shot_id():
    tied = _toy("7 Q0 a 1 5 t\n7 Q0 b 2 5 t\n")  # equal scores: b (non-relevant) ranks above a
    assert f"{tied.inf_ap:6.4f}" == "0.1667"
    ahead = _toy("7 Q0 a 1 5.0001 t\n7 Q0 b 2 5 t\n")
    assert f"{ahead.inf_ap:6.4f}" == "0.3333"
    # byte order: "shot9_1" > "shot10_1", so shot9_1 ranks first on a tie
    order = _toy("7 Q0 shot10_1 1 1 t\n7 Q0 shot9_1 2 1 t\n").per_topic["7"]
    assert order.num_ranked == 2


def test_rank_column_is_ignored():
    reversed_ranks = (
        TOY_RUN.replace(" 1 4 ", " 4 4 ").replace(" 2 3 ", " 3 3 ").replace(" 3 2 ", " 2 2 ").replace(" 4 1 ", " 1 1 ")
    )
    assert format_sample_eval(_toy(reversed_ranks), True) == format_sample_eval(_toy(TOY_RUN), True)


def test_duplicate_lines_last_score_wins_and_num_ret_counts_lines():
    result = _toy(TOY_RUN + "7 Q0 a 5 0.5 demo\n")  # a drops below c
    topic = result.per_topic["7"]
    assert (topic.num_ret, topic.num_ranked, topic.num_distinct) == (5, 4, 4)
    assert result.duplicate_lines == {"7": 1}
    reordered = _toy("7 Q0 x 1 4 demo\n7 Q0 e 3 2 demo\n7 Q0 c 4 1 demo\n7 Q0 a 2 0.5 demo\n")
    assert topic.inf_ap == reordered.per_topic["7"].inf_ap


def test_max_results_cut_off_and_over_limit_report():
    result = _toy(TOY_RUN, max_results=2)  # only x and a count
    topic = result.per_topic["7"]
    assert (topic.num_ranked, topic.num_ret) == (2, 4)
    assert result.over_limit_topics == {"7": 4}
    assert topic.inum_rel_ret == pytest.approx(0.99998, abs=1e-6)


def test_means_divide_by_topics_in_both_run_and_qrels():
    qrels = "7 0 a 1 1\n7 0 b 1 0\n8 0 p 1 1\n8 0 q 1 0\n"
    result = _toy("7 Q0 a 1 2 t\n9 Q0 z 1 1 t\n", qrels)
    assert result.num_topics == 1 and result.inf_ap == result.per_topic["7"].inf_ap
    assert result.missing_topics == ("8",) and result.foreign_topics == ("9",)
    assert result.inum_rel == 2.0  # inum_rel all sums every qrels topic
    zero = _toy("7 Q0 a 1 2 t\n9 Q0 z 1 1 t\n", qrels, missing_as_zero=True)
    assert zero.num_topics == 2 and zero.inf_ap == result.inf_ap / 2
    assert not zero.per_topic["8"].in_run and zero.per_topic["8"].inf_ap == 0.0
    assert zero.scored_topics == ["7"]
    assert "infAP\t\t8\t\t0.0000\n" in format_sample_eval(zero, True)


def test_no_common_topic_is_an_error_unless_lenient():
    with pytest.raises(EvaluationError) as err:
        _toy("8 Q0 a 1 2 t\n")
    assert "toy.run" in str(err.value) and "no" in str(err.value).lower()
    lenient = _toy("8 Q0 a 1 2 t\n", lenient=True)
    assert lenient.num_topics == 0 and lenient.inf_ap == 0.0
    assert format_sample_eval(lenient, True) == ""  # the Perl script prints nothing on stdout


def test_lenient_reading_reproduces_perl_on_malformed_runs():
    # golden README, "Malformed input": non-numeric score "abc" on shot a; a 5-field line
    abc = _toy(TOY_RUN.replace("a 2 3 demo", "a 2 abc demo"), lenient_read=True)
    assert format_sample_eval(abc, True).splitlines()[:2] == ["infAP\t\t7\t\t0.5463", "infNDCG\t\t7\t\t0.6714"]
    short = _toy(TOY_RUN.replace("a 2 3 demo", "a 2 3"), lenient_read=True)
    lines = format_sample_eval(short, True).splitlines()
    assert lines[:3] == ["infAP\t\t7\t\t0.1667", "infNDCG\t\t7\t\t0.2961", "iP5\t\t7\t\t0.2000"]
    assert lines[13] == "num_ret\t\t7\t        2"
    assert len(lines) == 39


def test_custom_cutoffs_print_like_the_ruc_variant():
    result = _toy(TOY_RUN, cutoffs=(10, 100, 1000, 1000))
    text = format_sample_eval(result, False)
    assert text.count("iP1000\t\tall\t\t0.0030\n") == 2 and "iP5\t" not in text
    assert len(text.splitlines()) == 2 + 11 + 4 + 3


def test_bad_parameters():
    with pytest.raises(ConfigError):
        _toy(TOY_RUN, max_results=0)
    with pytest.raises(ConfigError):
        _toy(TOY_RUN, cutoffs=(0, 10))


def test_measures_and_json_dict_carry_full_precision():
    result = _toy(TOY_RUN)
    measures = result.measures()
    assert list(measures)[:3] == ["infAP", "infNDCG", "iprec@rec0.00"]
    assert [k for k in measures if k.startswith("iP")] == [f"iP{c}" for c in DEFAULT_CUTOFFS]
    data = result.to_dict()
    assert data["summary"]["infAP"] == result.inf_ap
    assert data["per_topic"]["7"]["inum_rel_ret"] == result.per_topic["7"].inum_rel_ret


def test_xml_run_scores_like_its_trec_lines():
    items = "".join(f'<item seqNum="{i}" shotId="{s}"/>' for i, s in enumerate("xaec", 1))
    xml = (
        '<videoAdhocSearchResults><videoAdhocSearchRunResult pid="T">'
        f'<videoAdhocSearchTopicResult tNum="7" elapsedTime="1">{items}</videoAdhocSearchTopicResult>'
        "</videoAdhocSearchRunResult></videoAdhocSearchResults>"
    )
    qrels = (GOLDEN / "qrels" / "toy.qrels").read_text().replace("7 0", "17 0")
    run = RunFile.from_bytes(xml.encode(), "run.xml")[0]
    trec = RunFile.from_bytes(TOY_RUN.replace("7 Q0", "17 Q0").encode())[0]
    table = Qrels.from_bytes(qrels.encode())
    assert format_sample_eval(evaluate(table, run), True) == format_sample_eval(evaluate(table, trec), True)


def test_topics_with_hundreds_of_strata_match_the_scalar_reference():
    from sample_eval_reference import reference_evaluate

    qrels = "".join(f"1 0 s{i} {i} {1 if i % 3 else -1}\n1 0 t{i} {i} 0\n" for i in range(300))
    run = "".join(f"1 Q0 {p}{i} {i} {1000 - i} x\n" for i in range(300) for p in ("s", "t"))
    result = evaluate(Qrels.from_bytes(qrels.encode()), RunFile.from_bytes(run.encode())[0])
    reference = reference_evaluate(qrels, run)
    assert {t: r.measures() for t, r in result.per_topic.items()} == reference["per_topic"]
    assert result.measures() == reference["summary"]
