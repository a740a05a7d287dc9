"""Submission XML: writing, DTD + NIST content validation, run names."""

from __future__ import annotations

import re

import pytest

from avsbench.data.submission import (
    SubmissionHeader,
    dtd_path,
    dtd_url,
    nist_run_name,
    shots_in_scorer_order,
    submission_xml,
    validate_submission,
    write_submission,
)
from avsbench.data.topics import get_year
from avsbench.errors import ConfigError, UnknownIdError

H19 = SubmissionHeader("TEAM", 1, "F", "D", "LAFF & friends <demo>", task="M", novelty="C")
H17 = SubmissionHeader("TEAM", 2, "M", "A", "old era")


def full_run(year_key: str, n: int = 5) -> dict[str, list[tuple[str, float]]]:
    topics = get_year(year_key).topics()
    return {
        t.qrels_id: [(f"shot{(t.number * 7 + i) % 7000 + 10:05d}_{i + 1}", 1.0 - i / 100) for i in range(n)]
        for t in topics
    }


def test_scorer_order_ties_and_repeats():
    pairs = [
        ("shot00001_1", 0.5),
        ("shot00009_1", 0.5),
        ("shot00010_1", 0.5),
        ("shot00002_1", 0.9),
        ("shot00002_1", 0.1),
    ]
    # repeated shot: the later score wins (sample_eval); ties: shot id descending as bytes
    assert shots_in_scorer_order(pairs) == ["shot00010_1", "shot00009_1", "shot00001_1", "shot00002_1"]
    assert shots_in_scorer_order([("shot9_1", 1.0), ("shot10_1", 1.0)]) == ["shot9_1", "shot10_1"]


def test_write_2019_header_items_and_validates(tmp_path):
    run = full_run("2019")
    run["1611"] = [(f"shot{i:05d}_2", float(i % 7)) for i in range(1, 1500)]
    out = write_submission(tmp_path / "x.xml", run, get_year(2019), H19, 3)
    text = out.read_text()
    lines = text.splitlines()
    assert lines[1] == f'<!DOCTYPE videoAdhocSearchResults SYSTEM "{dtd_url(2019)}">'
    assert "https://www-nlpir.nist.gov/projects/tv2019/dtds/" in lines[1]
    assert lines[3] == (
        '<videoAdhocSearchRunResult trType="D" class="F" task="M" novelty="C" pid="TEAM" '
        'priority="1" desc="LAFF &amp; friends &lt;demo&gt;">'
    )
    tnums = re.findall(r'tNum="(\d+)" elapsedTime="(\d+)"', text)
    assert [int(t) for t, _ in tnums] == list(range(611, 641))
    assert {e for _, e in tnums} == {"3"}
    first = text.split('tNum="611"')[1].split("</videoAdhocSearchTopicResult>")[0]
    items = re.findall(r'<item seqNum="(\d+)" shotId="(shot\d+_\d+)"/>', first)
    assert len(items) == 1000
    assert [int(s) for s, _ in items] == list(range(1, 1001))
    expected = shots_in_scorer_order(run["1611"])[:1000]
    assert [shot for _, shot in items] == expected
    assert validate_submission(out) == []


def test_write_2016_era_has_no_task_and_validates(tmp_path):
    out = write_submission(tmp_path / "x.xml", full_run("2017"), get_year(2017), H17, 0)
    text = out.read_text()
    assert "tv2017/dtds/videoAdhocSearchResults.dtd" in text
    assert "task=" not in text and "novelty=" not in text
    assert validate_submission(out) == []
    assert validate_submission(out, year=get_year(2017)) == []
    # checked against the 2019+ year it misses both new attributes and all 2019 topics
    problems = validate_submission(out, year=get_year(2019))
    assert any(p.check == "dtd" and "task" in p.message for p in problems)
    assert sum("missing" in p.message and "topic" in p.message for p in problems) == 30


def test_progress_task(tmp_path):
    h = SubmissionHeader("TEAM", 1, "F", "D", "progress", task="P", novelty="C")
    data = submission_xml(full_run("progress"), get_year(2020), h, 1)
    assert [int(x) for x in re.findall(rb'tNum="(\d+)"', data)] == list(range(591, 611))
    assert b"tv2020" in data
    assert validate_submission(data) == []
    # the main 2020 topics are not progress topics
    with pytest.raises(ConfigError, match="not a topic"):
        submission_xml(full_run("2020"), get_year(2020), h, 1)


def test_missing_run_topics_give_empty_results():
    run = full_run("2021")
    del run["1665"]
    data = submission_xml(run, get_year(2021), H19, 1)
    assert b'<videoAdhocSearchTopicResult tNum="665" elapsedTime="1">\n</videoAdhocSearchTopicResult>' in data
    assert validate_submission(data) == []


@pytest.mark.parametrize(
    ("header", "year", "match"),
    [
        (SubmissionHeader("TEAM", 1, "F", "D", "x"), 2019, "task"),
        (SubmissionHeader("TEAM", 1, "F", "D", "x", task="M"), 2019, "novelty"),
        (H19, 2018, "no task or novelty"),
        (SubmissionHeader("TEAM", 11, "F", "D", "x"), 2016, "priority"),
        (SubmissionHeader("TEAM", 1, "X", "D", "x"), 2016, "class"),
        (SubmissionHeader("TEAM", 1, "F", "B", "x"), 2016, "training type"),
        (SubmissionHeader("TE AM", 1, "F", "D", "x"), 2016, "participant"),
        (SubmissionHeader("TEAM", 1, "F", "D", "bad\x01"), 2016, "description"),
    ],
)
def test_header_values_are_checked(header, year, match):
    with pytest.raises(ConfigError, match=match):
        submission_xml(full_run(str(year)), get_year(year), header, 1)


def test_bad_run_topics_and_elapsed_time():
    with pytest.raises(ConfigError, match="not a topic of tv19"):
        submission_xml(full_run("2020"), get_year(2019), H19, 1)
    with pytest.raises(UnknownIdError):
        submission_xml({"611": [("shot00001_1", 1.0)]}, get_year(2019), H19, 1)
    with pytest.raises(ConfigError, match="elapsed"):
        submission_xml(full_run("2019"), get_year(2019), H19, 1.5)  # type: ignore[arg-type]


def test_run_names():
    assert nist_run_name(H19, 2019) == "F_M_C_D_TEAM.19_1"
    assert (
        nist_run_name(SubmissionHeader("VIREO", 2, "M", "A", "x", task="P", novelty="N"), 2021) == "M_P_N_A_VIREO.21_2"
    )
    assert nist_run_name(H17, 2017) == "M_A_TEAM.17_2"


def test_dtd_files_per_era():
    assert dtd_path(2016).name == "videoAdhocSearchResults.tv2016.dtd"
    assert dtd_path(2018) == dtd_path(2016)
    assert dtd_path(2019).name == "videoAdhocSearchResults.tv2019.dtd"
    assert dtd_path(2021) == dtd_path(2019)
    assert dtd_path(2016).is_file() and dtd_path(2019).is_file()


BAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE videoAdhocSearchResults SYSTEM "https://www-nlpir.nist.gov/projects/tv2021/dtds/videoAdhocSearchResults.dtd">
<videoAdhocSearchResults>
<videoAdhocSearchRunResult trType="D" class="Q" task="M" pid="TEAM" priority="1" desc="x">
<videoAdhocSearchTopicResult tNum="661" elapsedTime="2.5">
<item seqNum="1" shotId="shot00001_1"/>
<item seqNum="1" shotId="shot00002_1"/>
<item seqNum="x" shotId="shot9_1"/>
<item seqNum="4" shotId="shot00001_1"/>
<item seqNum="5" shotId="shot09999_1"/>
<item seqNum="6" shotId="shot05037_1"/>
<item seqNum="1001" shotId="shot00003_1"/>
</videoAdhocSearchTopicResult>
<videoAdhocSearchTopicResult tNum="0661" elapsedTime="2">
</videoAdhocSearchTopicResult>
<videoAdhocSearchTopicResult tNum="611" elapsedTime="2">
<item shotId="shot00004_1"/>
</videoAdhocSearchTopicResult>
</videoAdhocSearchRunResult>
</videoAdhocSearchResults>
"""


def test_validate_reports_every_problem_with_its_line(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text(BAD)
    problems = validate_submission(path)
    got = {(p.line, p.check, p.message.split(" (")[0]) for p in problems}
    expected_nist = {
        (4, "run attribute class='Q'"),
        (4, "run attribute novelty is missing"),
        (5, "elapsedTime '2.5' is not an integer number of seconds"),
        (7, "seqNum 1 repeated in topic 661"),
        (8, "seqNum 'x'"),
        (8, "malformed shotId 'shot9_1'"),
        (9, "shotId shot00001_1 repeated in topic 661"),
        (10, "shotId 'shot09999_1': V3C1 video numbers are 00001-07475"),
        (11, "shotId 'shot05037_1' was dropped from V3C1 by NIST"),
        (12, "seqNum '1001'"),
        (14, "topic 661 repeated"),
        (16, "topic 611 is not a topic of tv21"),
    }
    assert expected_nist <= {(line, msg) for line, check, msg in got if check == "nist"}
    missing = [p for p in problems if p.line == 4 and "missing" in p.message and p.message.startswith("topic ")]
    assert len(missing) == 19  # 662..680
    dtd = [p for p in problems if p.check == "dtd"]
    assert {p.line for p in dtd} == {4, 17}  # class value / novelty on the run, item without seqNum
    assert all(str(p).startswith(f"line {p.line}: [") for p in problems)


def test_validate_checks_the_shot_list_and_item_count(tmp_path):
    run = full_run("2019", n=3)
    data = submission_xml(run, get_year(2019), H19, 1)
    shots = {s for pairs in run.values() for s, _ in pairs}
    assert validate_submission(data, shot_ids=shots) == []
    shots.discard(run["1611"][0][0])
    problems = validate_submission(data, shot_ids=shots)
    assert len(problems) == 1 and "not in the v3c1 shot list" in problems[0].message
    many = "\n".join(f'<item seqNum="{i}" shotId="shot00001_{i}"/>' for i in range(1, 1002))
    too_long = data.replace(b'<item seqNum="1" shotId', many.encode() + b'\n<item seqNum="1002" shotId', 1)
    assert any("1004 items (at most 1000)" in p.message for p in validate_submission(too_long))


def test_validate_never_fetches_and_handles_broken_files(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<videoAdhocSearchResults>\n<videoAdhocSearchRunResult>\n</videoAdhocSearchResults>\n")
    problems = validate_submission(broken)
    assert problems and all(p.check == "xml" for p in problems)
    assert problems[0].line == 3
    no_doctype = submission_xml(full_run("2019"), get_year(2019), H19, 1).replace(
        b'<!DOCTYPE videoAdhocSearchResults SYSTEM "https://www-nlpir.nist.gov/projects/tv2019/dtds/videoAdhocSearchResults.dtd">\n',
        b"",
    )
    problems = validate_submission(no_doctype)
    assert [p.message.split(" (")[0] for p in problems] == ["no DOCTYPE"]
    assert validate_submission(no_doctype, year=get_year(2019))[0].message.startswith("no DOCTYPE")


def test_real_tv21_run_round_trip_scores_identically(tmp_path):
    """NIST-style public TV21 run (bundled) -> XML -> scorer: the same numbers as the TREC file."""
    from avsbench.data.resources import bundled_runs
    from avsbench.data.runs import RunFile
    from avsbench.eval.scoring import score_runs

    trec = bundled_runs()[
        1
    ]  # test_run.tv21.GodSpeed.txt (NIST run F_M_C_D_GodSpeed.21_1), infAP 0.3490 with NIST's script
    run = RunFile.read(trec)
    header = SubmissionHeader("GodSpeed", 1, "F", "D", "public TV21 run", task="M", novelty="C")
    assert nist_run_name(header, 2021) == "F_M_C_D_GodSpeed.21_1"  # NIST's name of the bundled run
    xml = write_submission(
        tmp_path / "run.xml",
        {t: zip(lines.shots, lines.scores) for t, lines in run.topics.items()},
        get_year(2021),
        header,
        60,
    )
    assert validate_submission(xml) == []
    a, b = score_runs([trec, xml])
    assert f"{a.result.inf_ap:.4f}" == "0.3490"
    assert a.result.to_dict()["summary"] == b.result.to_dict()["summary"]
    assert a.result.to_dict()["per_topic"] == b.result.to_dict()["per_topic"]


def _many_runs_xml(path, runs: int) -> None:
    """A valid 2021 submission of ``runs`` runs x 20 topics x 1000 items, written line by line."""
    with open(path, "w") as fh:
        fh.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE videoAdhocSearchResults SYSTEM '
            f'"{dtd_url(2021)}">\n<videoAdhocSearchResults>\n'
        )
        for priority in range(1, runs + 1):
            fh.write(
                f'<videoAdhocSearchRunResult trType="D" class="F" task="M" novelty="C" pid="big" '
                f'priority="{priority % 10 + 1}" desc="d">\n'
            )
            for topic in range(661, 681):
                fh.write(f'<videoAdhocSearchTopicResult tNum="{topic}" elapsedTime="1">\n')
                fh.write("".join(f'<item seqNum="{r}" shotId="shot{r:05d}_{topic - 600}"/>\n' for r in range(1, 1001)))
                fh.write("</videoAdhocSearchTopicResult>\n")
            fh.write("</videoAdhocSearchRunResult>\n")
        fh.write("</videoAdhocSearchResults>\n")


def test_validate_streams_a_large_submission_in_bounded_memory(tmp_path):
    """issue 12 row 4: validate reads the XML as a stream; 480,000 items fit in 400 MB of address space
    (building the whole tree took about 1 GB per million items)."""
    from hostile import run_cli_limited

    path = tmp_path / "big.xml"
    _many_runs_xml(path, 24)
    done = run_cli_limited(["validate", str(path), "--year", "2021"], limit_mb=400)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{path}: valid"


def test_validate_summary_keeps_the_first_of_each_kind_only():
    """issue 12 row 4: the default report keeps 20 problems of each kind (the first by line) and counts the
    rest, whatever order the checks find them in; the lines are those of the full grouping."""
    from avsbench.cli.submit import SHOWN_PER_KIND, ProblemKinds
    from avsbench.data.submission import Problem

    problems = [Problem(line, "nist", f"malformed shotId 'x{line}'") for line in range(5000, 0, -1)]
    problems += [
        Problem(7, "dtd", "No declaration for element bar"),
        Problem(7, "dtd", "No declaration for element bar"),
    ]
    summary, everything = ProblemKinds(SHOWN_PER_KIND), ProblemKinds(None)
    for start in range(0, len(problems), 100):
        summary.add(problems[start : start + 100])
        everything.add(problems[start : start + 100])
    assert max(len(kept) for kept in summary.kept.values()) <= 2 * SHOWN_PER_KIND + 64
    assert summary.total() == everything.total() == 5002
    lines = summary.lines("f.xml")
    assert lines[:3] == [
        "f.xml:1: [nist] malformed shotId 'x1'",
        "f.xml:2: [nist] malformed shotId 'x2'",
        "f.xml:3: [nist] malformed shotId 'x3'",
    ]
    assert lines[SHOWN_PER_KIND].startswith("f.xml: ... and 4980 more of this kind (5000 in all): [nist] malformed")
    assert lines[-2:] == ["f.xml:7: [dtd] No declaration for element bar"] * 2
    assert len(everything.lines("f.xml")) == 5002
