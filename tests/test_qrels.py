"""Qrels: the statistics sample_eval keeps, the accessors, the bundled 2021 file, and bad input."""

from __future__ import annotations

import math

import pytest

from avsbench.data.qrels import Qrels
from avsbench.data.resources import bundled_qrels
from avsbench.errors import InputFormatError, MissingDataError, UnknownIdError

TOY = "7 0 a 1 1\n7 0 b 1 0\n7 0 c 2 1\n7 0 d 2 0\n7 0 e 2 -1\n7 0 f 2 -1\n"


def q(text: str, **kwargs) -> Qrels:
    return Qrels.from_bytes(text.encode(), "test.qrels", **kwargs)


def test_toy_statistics_and_accessors():
    qrels = q(TOY)
    topic = qrels["7"]
    assert topic.strata == ("1", "2")
    assert topic.pool_size == {"1": 2, "2": 4}
    assert topic.sampled == {"1": 2, "2": 2}
    assert topic.relevant == {"1": 1, "2": 1}
    assert topic.estimated_relevant == 3.0
    assert qrels.estimated_relevant("7") == 3.0 and qrels.total_estimated_relevant == 3.0
    assert qrels.pool("7") == set("abcdef")
    assert qrels.judged("7") == set("abcd")
    assert qrels.relevant("7") == {"a", "c"}
    assert topic.ideal_dcg() == pytest.approx(1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert "7" in qrels and len(qrels) == 1 and list(qrels) == ["7"]
    with pytest.raises(UnknownIdError):
        qrels["8"]


def test_duplicates_are_double_counted_and_the_last_record_wins():
    qrels = q("1 0 s 1 0\n1 0 t 1 1\n1 0 s 2 1\n")  # s re-judged and re-stratified
    topic = qrels["1"]
    assert topic.pool_size == {"1": 2, "2": 1}
    assert topic.sampled == {"1": 2, "2": 1}
    assert topic.relevant == {"1": 1, "2": 1}
    assert topic.judgment["s"] == 1 and topic.stratum["s"] == "2"
    assert topic.relevant_shots == {"s", "t"}


def test_keys_are_exact_strings_and_strata_sort_as_strings():
    qrels = q("1661 0 Shot1 3 1\n01661 0 shot1 03 0\n1661 0 x 10 1\n1661 0 y 2 0\n")
    assert set(qrels.topics) == {"1661", "01661"}
    assert qrels["1661"].strata == ("10", "2", "3")
    assert "shot1" not in qrels["1661"].judgment and "Shot1" in qrels["1661"].judgment
    assert qrels["01661"].strata == ("03",)


def test_topic_ids_in_numeric_order():
    qrels = q("1591 0 a 1 1\n591 0 a 1 1\n1600 0 a 1 1\n595 0 a 1 1\n")
    assert qrels.topic_ids == ["591", "595", "1591", "1600"]
    assert qrels.total_estimated_relevant == 4.0


def test_graded_judgments_and_fractional_ideal_dcg():
    qrels = q("1 0 a 1 2\n1 0 b 1 1\n1 0 c 2 1\n1 0 d 2 0\n1 0 e 2 -1\n")
    topic = qrels["1"]
    assert topic.grade_counts == {"1": {"2": 1, "1": 1}, "2": {"1": 1}}
    assert topic.estimated_relevant == 2 + 1 * 3 / 2
    # grade "2": 1 shot at rank 1; grade "1": 1 + 1.5 = 2.5 shots from rank 2 on (ranks 2 and 3)
    assert topic.ideal_dcg() == pytest.approx(2 / 1 + 1 / math.log2(3) + 1 / math.log2(4))


def test_topic_with_only_unsampled_shots_is_a_topic():
    qrels = q("1 0 a 3 -1\n1 0 b 3 -1\n")
    assert qrels.topic_ids == ["1"] and qrels["1"].estimated_relevant == 0.0
    assert qrels["1"].ideal_dcg() == 0.0


def test_bundled_2021_qrels():
    qrels = Qrels.read(bundled_qrels("tv21"))
    assert qrels.topic_ids == [str(t) for t in range(1661, 1681)]
    sizes = {t: sum(qrels[t].pool_size.values()) for t in qrels}
    assert sum(sizes.values()) == 124431
    assert (sizes["1661"], sizes["1675"], sizes["1680"]) == (5805, 3297, 4794)
    t1661 = qrels["1661"]
    assert t1661.pool_size == {"1": 922, "2": 991, "3": 3892}
    assert t1661.sampled == {"1": 922, "2": 991, "3": 1278}
    assert t1661.relevant == {"1": 631, "2": 451, "3": 326}
    assert round(t1661.estimated_relevant, 3) == 2074.795
    assert round(qrels["1662"].estimated_relevant, 4) == 5327.3579
    big = [t for t in qrels.topic_ids if qrels[t].estimated_relevant > 1000]
    assert big == ["1661", "1662", "1663", "1666", "1668", "1673", "1674", "1680"]
    assert f"{qrels.total_estimated_relevant:.4f}" == "26251.2041"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("7 0 a 1 1\n7 0 b 1 x\n", 2, "not an integer"),
        ("7 0 a 1 1\n7 0 b 1 0.5\n", 2, "not an integer"),
        ("7 0 a 1 1\n\n7 0 b 1\n", 3, "4 fields"),
        ("7 0 a 1 1 extra\n", 1, "6 fields"),
        (" 7 0 a 1 1\n", 1, "starts with whitespace"),
        ("\n7 0 a 1 1\n", 1, "starts with whitespace"),
        ("7 0 a 1 1\n7 0 b\x00 1 0\n", 2, "binary"),
        ("7 0 a 1 1\n7 0 \xff 1 0\n", 2, "UTF-8"),
    ],
)
def test_malformed_qrels_name_file_and_line(text, line, words):
    data = text.encode("latin-1")
    with pytest.raises(InputFormatError) as err:
        Qrels.from_bytes(data, "bad.qrels")
    assert err.value.line == line and err.value.path == "bad.qrels"
    assert words in str(err.value)
    assert str(err.value).startswith(f"bad.qrels:{line}: ")


def test_empty_and_missing_qrels(tmp_path):
    with pytest.raises(InputFormatError, match="empty qrels"):
        Qrels.from_bytes(b"  \n\n", "e.qrels")
    with pytest.raises(MissingDataError, match="not found"):
        Qrels.read(tmp_path / "nope.qrels")


def test_lenient_qrels_reproduce_perl_parsing():
    # a leading blank line shifts every record by one token: topics become judgment values
    shifted = q("\n" + TOY, lenient=True)
    assert list(shifted.topics) == ["", "1", "0", "-1"]
    assert shifted["1"].judgment == {"0": 2.0} and shifted["1"].stratum == {
        "0": "d"
    }  # records "1 7 0 b 1" and "1 7 0 d 2"
    # numeric prefix for judgments, a short last record is padded (judgment 0: sampled, not relevant)
    loose = q("7 0 a 1 1x\n7 0 b 1", lenient=True)
    assert loose["7"].judgment == {"a": 1.0, "b": 0.0}
    assert loose["7"].sampled == {"1": 2} and loose["7"].relevant == {"1": 1}
    assert loose["7"].grade_counts == {"1": {"1x": 1}}
