"""Run files: TREC reading (strict and lenient), the scorer order, atomic writing, TRECVID XML."""

from __future__ import annotations

import os

import pytest

from avsbench.data.resources import bundled_runs
from avsbench.data.runs import RunFile, format_score, ranked_shots
from avsbench.errors import InputFormatError, MissingDataError


def run(text: str, **kwargs) -> RunFile:
    runs = RunFile.from_bytes(text.encode("latin-1"), "test.run", **kwargs)
    assert len(runs) == 1
    return runs[0]


def test_trec_lines_grouped_by_topic_in_file_order():
    r = run("1611 Q0 s1 1 9 tag\n1611 Q0 s2 2 8 tag\n1612 Q0 s3 1 5e-1 tag\n1611 Q0 s1 3 7 tag\n")
    assert list(r.topics) == ["1611", "1612"]
    assert r.topics["1611"].shots == ["s1", "s2", "s1"]
    assert r.topics["1611"].scores == [9.0, 8.0, 7.0]
    assert r.topics["1612"].scores == [0.5]
    assert r.tag == "tag" and r.name == "test.run" and len(r) == 4
    assert r.topic_ids == ["1611", "1612"]
    assert list(r.entries())[2] == ("1611", "s1", 7.0)


def test_bundled_real_runs_read_strictly():
    for path in bundled_runs():
        r = RunFile.read(path)
        assert len(r.topics) == 20 and len(r) == 20000
        assert all(t.num_lines == 1000 for t in r.topics.values())


def test_scorer_order_score_desc_then_shot_id_desc_and_last_duplicate_wins():
    shots = ["shot10_1", "shot9_1", "a", "b", "a"]
    scores = [1.0, 1.0, 3.0, 2.0, 0.5]
    assert ranked_shots(shots, scores) == [("b", 2.0), ("shot9_1", 1.0), ("shot10_1", 1.0), ("a", 0.5)]
    assert run("1 Q0 x 1 2 t\n1 Q0 y 2 1 t\n").topics["1"].ranked() == [("x", 2.0), ("y", 1.0)]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("1 Q0 a 1 3 t\n1 Q0 b 2 2\n", 2, "5 fields"),
        ("1 Q0 a 1 3 t\n1 Q0 b 2 2 t x\n", 2, "7 fields"),
        ("1 Q0 a 1 3 t\n1 Q0 b 2 abc t\n", 2, "'abc' is not a number"),
        ("1 Q0 a 1 1_000 t\n", 1, "not a number"),
        ("1 Q0 a 1 inf t\n", 1, "not a number"),
        ("1 Q0 a 1 nan t\n", 1, "not a number"),
        ("1 Q0 a 1 1e t\n", 1, "not a number"),
        ("1 Q0 a 1 2 t\n1 Q0 b 2 -1e999 t\n", 2, "'-1e999' is out of range"),
        ("1 Q0 a 1 -- t\n", 1, "not a number"),
        (" 1 Q0 a 1 3 t\n", 1, "starts with whitespace"),
        ("\n1 Q0 a 1 3 t\n", 1, "starts with whitespace"),
        ("1 Q0 a 1 3 t\n\n\n1 Q0 \x00\x01 1 3 t\n", 4, "binary"),
        ("1 Q0 a 1 3 t\n1 Q0 \xe9 1 3 t\n", 2, "UTF-8"),
    ],
)
def test_malformed_trec_run_names_file_and_line(text, line, words):
    with pytest.raises(InputFormatError) as err:
        run(text)
    assert (err.value.path, err.value.line) == ("test.run", line)
    assert words in str(err.value)


def test_empty_and_missing_run_files(tmp_path):
    for data in (b"", b" \n\t\n"):
        with pytest.raises(InputFormatError, match="empty run file"):
            RunFile.from_bytes(data, "e.run")
    with pytest.raises(MissingDataError, match="run file not found"):
        RunFile.read(tmp_path / "missing.run")
    with pytest.raises(MissingDataError, match="not a file"):
        RunFile.read(tmp_path)


def test_whitespace_inside_the_file_is_harmless():
    r = run("1 Q0 a 1 3 t\r\n\r\n   1\tQ0  b 2 +2.0 t  \r\n1 Q0 c 3 .5 t")
    assert r.topics["1"].shots == ["a", "b", "c"] and r.topics["1"].scores == [3.0, 2.0, 0.5]


def test_lenient_reads_like_perl():
    # "abc" -> 0; a 5-field line pulls the next line's first token into its record
    r = run("7 Q0 x 1 4 d\n7 Q0 a 2 abc d\n7 Q0 e 3 2 d\n", lenient=True)
    assert r.topics["7"].scores == [4.0, 0.0, 2.0]
    shifted = run("7 Q0 x 1 4 d\n7 Q0 a 2 3\n7 Q0 e 3 2 d\n", lenient=True)
    assert shifted.topics["7"].shots == ["x", "a"] and list(shifted.topics) == ["7", "Q0"]
    assert shifted.topics["Q0"].shots == ["3"] and shifted.topics["Q0"].scores == [0.0]  # padded last record
    lead = run(" 7 Q0 x 1 4 d\n", lenient=True)
    assert list(lead.topics) == ["", "d"]  # records ("", 7, Q0, x, 1, 4) and ("d", padded)
    assert lead.topics[""].shots == ["Q0"] and lead.topics[""].scores == [1.0]
    assert run("", lenient=True).topics == {}


def test_format_score():
    assert [format_score(x) for x in (9999.0, -3.0, 0.25, 4.7312e-04)] == ["9999", "-3", "0.25", "0.00047312"]


def test_write_is_ordered_deduplicated_and_reads_back(tmp_path):
    r = run("1612 Q0 b 9 1 tg\n1611 Q0 a 1 0.5 tg\n1611 Q0 shot9_1 2 2 tg\n1611 Q0 shot10_1 3 2 tg\n1611 Q0 a 4 3 tg\n")
    out = tmp_path / "sub" / "out.run"
    r.write(out)
    assert out.read_text() == ("1611 Q0 a 1 3 tg\n1611 Q0 shot9_1 2 2 tg\n1611 Q0 shot10_1 3 2 tg\n1612 Q0 b 1 1 tg\n")
    back = RunFile.read(out)
    assert {t: back.topics[t].ranked() for t in back.topics} == {t: r.topics[t].ranked() for t in r.topics}
    assert [p for p in os.listdir(out.parent)] == ["out.run"]


def test_write_refuses_non_finite_scores_and_leaves_the_old_file(tmp_path):
    out = tmp_path / "out.run"
    out.write_text("old\n")
    bad = RunFile.from_entries([("1611", "a", 1.0), ("1611", "b", float("nan"))], name="x")
    with pytest.raises(InputFormatError, match="non-finite"):
        bad.write(out)
    assert out.read_text() == "old\n"


def xml(topics: str, runs: int = 1) -> bytes:
    body = "".join(
        f'<videoAdhocSearchRunResult trType="D" class="F" pid="TEAM" priority="{p}" '
        f'desc="d">{topics}</videoAdhocSearchRunResult>'
        for p in range(1, runs + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!DOCTYPE videoAdhocSearchResults SYSTEM "
        '"https://www-nlpir.nist.gov/projects/tv2019/dtds/videoAdhocSearchResults.dtd">\n'
        f"<videoAdhocSearchResults>\n{body}\n</videoAdhocSearchResults>\n"
    ).encode()


TOPICS = (
    '<videoAdhocSearchTopicResult tNum="611" elapsedTime="3">'
    '<item seqNum="2" shotId="shot00002_1"/><item seqNum="1" shotId="shot00001_1"/><item seqNum="10" '
    'shotId="shot00010_1"/>'
    "</videoAdhocSearchTopicResult>\n"
    '<videoAdhocSearchTopicResult tNum="0612" elapsedTime="3"><item seqNum="1" '
    'shotId="shot00003_1"/></videoAdhocSearchTopicResult>'
    '<videoAdhocSearchTopicResult tNum="613" elapsedTime="3"></videoAdhocSearchTopicResult>'
)


def test_xml_run_topics_and_seqnum_order():
    (r,) = RunFile.from_bytes(xml(TOPICS), "sub.xml")
    assert r.source_format == "xml" and r.tag == "TEAM" and r.name == "sub.xml"
    assert r.topics["1611"].shots == ["shot00001_1", "shot00002_1", "shot00010_1"]
    assert r.topics["1611"].scores == [3.0, 2.0, 1.0]
    assert r.topics["1611"].ranked()[0] == ("shot00001_1", 3.0)
    assert r.topics["1612"].shots == ["shot00003_1"]  # "1" + tNum, as a number
    assert r.topic_ids == ["1611", "1612"]  # a topic without items counts as absent


def test_xml_with_several_runs(tmp_path):
    path = tmp_path / "two.xml"
    path.write_bytes(xml(TOPICS, runs=2))
    runs = RunFile.read_all(path)
    assert [r.name for r in runs] == ["two.xml:TEAM_1", "two.xml:TEAM_2"]
    with pytest.raises(InputFormatError, match="holds 2 runs"):
        RunFile.read(path)


@pytest.mark.parametrize(
    ("data", "line", "words"),
    [
        # an unclosed topic: the streaming reader notices the next topic nested inside it, on that line
        (
            xml(TOPICS).replace(b"</videoAdhocSearchTopicResult>\n", b"\n", 1),
            5,
            "unexpected element <videoAdhocSearchTopicResult>",
        ),
        (xml(TOPICS)[:-30], 5, "not well-formed"),
        (b"<videoAdhocSearchResults><oops/></videoAdhocSearchResults>", 1, "unexpected element <oops>"),
        (xml(TOPICS.replace('tNum="611"', 'tNum="six"')), 4, "tNum 'six' is not a whole number"),
        (xml(TOPICS.replace('seqNum="10"', 'seqNum="x"')), 4, "seqNum 'x'"),
        (xml(TOPICS.replace('seqNum="10"', 'seqNum="2"')), 4, "seqNum 2 used twice"),
        (xml(TOPICS.replace('shotId="shot00003_1"', "")), 5, "without shotId"),
        (xml(TOPICS.replace('tNum="0612"', 'tNum="611"')), 5, "appears twice"),
        (b"<videoAdhocSearchResults></videoAdhocSearchResults>", 1, "no <videoAdhocSearchRunResult>"),
    ],
)
def test_bad_xml_names_file_and_line(data, line, words):
    with pytest.raises(InputFormatError) as err:
        RunFile.from_bytes(data, "bad.xml")
    assert (err.value.path, err.value.line) == ("bad.xml", line)
    assert words in str(err.value)


def test_lenient_xml_accepts_repeated_seqnum_in_document_order():
    (r,) = RunFile.from_bytes(xml(TOPICS.replace('seqNum="10"', 'seqNum="2"')), "x.xml", lenient=True)
    assert r.topics["1611"].shots == ["shot00001_1", "shot00002_1", "shot00010_1"]
