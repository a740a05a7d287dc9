"""Issue 11 items of the scoring path: rank column vs scores (1), submit's dropped shots (2), entity
references (8), gzip and standard input (14), files that are not what their name says (15), and
validate's grouped problems (17)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.runs import RunFile
from avsbench.data.submission import validate_submission
from avsbench.errors import InputFormatError

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "sample_eval"
TOY_QRELS = GOLDEN / "qrels" / "toy.qrels"
SUBMIT = [
    "--year",
    "2021",
    "--pid",
    "TEAM",
    "--priority",
    "1",
    "--class",
    "F",
    "--train-type",
    "D",
    "--desc",
    "d",
    "--elapsed-time",
    "5",
]


def _cli(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


def _rucmm_lines() -> list[str]:
    return bundled_runs()[0].read_text().splitlines(keepends=True)


# --- item 1: score column against rank column --------------------------------------------------


def test_constant_scores_are_a_rank_conflict_warned_by_score(tmp_path: Path) -> None:
    lines = [ln.split() for ln in _rucmm_lines() if ln.startswith("1661 ")]
    run = tmp_path / "constant.txt"
    run.write_text("".join(f"{t} Q0 {s} {r} 1 tag\n" for t, _, s, r, _, _ in lines))
    done = _cli("score", "--qrels", str(bundled_qrels("tv21")), "--format", "sample-eval", str(run))
    assert done.exit_code == 0
    assert "contradicts the rank column in 1 topic(s) (1661: ties on the score" in done.stderr
    assert "scored in score order" in done.stderr


def test_scores_rising_with_rank_are_warned_and_clean_runs_are_not(tmp_path: Path) -> None:
    rising = tmp_path / "distances.txt"
    rising.write_text("".join(f"1661 Q0 shot{i:05d}_1 {i} {i / 10} tag\n" for i in range(1, 30)))
    assert RunFile.read(rising).rank_conflicts() == {"1661": "scores rise with the rank"}
    assert RunFile.read(bundled_runs()[0]).rank_conflicts() == {}
    done = _cli("score", "--qrels", str(bundled_qrels("tv21")), "--format", "json", str(bundled_runs()[0]))
    assert "contradicts" not in done.stderr


def test_submit_order_rank_or_score(tmp_path: Path) -> None:
    run = tmp_path / "reversed.txt"
    run.write_text("".join(f"1661 Q0 shot{i:05d}_1 {i} {i} tag\n" for i in range(1, 6)))
    out_score, out_rank = tmp_path / "score.xml", tmp_path / "rank.xml"
    done = _cli("submit", str(run), *SUBMIT, "--out", str(out_score))
    assert done.exit_code == 0, done.output
    assert "contradicts the rank column" in done.stderr and "--order rank" in done.stderr
    assert out_score.read_text().index("shot00005_1") < out_score.read_text().index("shot00001_1")
    done = _cli("submit", str(run), *SUBMIT, "--order", "rank", "--out", str(out_rank))
    assert done.exit_code == 0, done.output
    assert out_rank.read_text().index("shot00001_1") < out_rank.read_text().index("shot00005_1")


def test_fuse_warns_about_rank_conflicts(tmp_path: Path) -> None:
    run = tmp_path / "flat.txt"
    run.write_text("".join(f"1661 Q0 shot{i:05d}_1 {i} 0.5 tag\n" for i in range(1, 6)))
    done = _cli("fuse", str(run), str(bundled_runs()[0]), "--method", "rrf", "--out", str(tmp_path / "fused.txt"))
    assert done.exit_code == 0, done.output
    assert "flat.txt: the score column contradicts the rank column" in done.stderr


# --- item 2: submit drops shots past 1000 with a warning -------------------------------------


def test_submit_warns_with_the_count_per_topic(tmp_path: Path) -> None:
    shots = list(dict.fromkeys(line.split()[2] for line in _rucmm_lines()))[:1200]  # real V3C1 shots
    run = tmp_path / "long.txt"
    run.write_text("".join(f"1662 Q0 {s} {i} {5000 - i} tag\n" for i, s in enumerate(shots, 1)))
    done = _cli("submit", str(run), *SUBMIT, "--out", str(tmp_path / "sub.xml"))
    assert done.exit_code == 0, done.output
    assert "1 topic(s) list more than 1000 shots" in done.stderr and "1662: 200 of 1200" in done.stderr


# --- item 8: entity references ---------------------------------------------------------------


def _submission(tmp_path: Path) -> Path:
    out = tmp_path / "sub.xml"
    assert _cli("submit", str(bundled_runs()[0]), *SUBMIT, "--out", str(out)).exit_code == 0
    return out


def test_entity_references_are_rejected_with_their_line(tmp_path: Path) -> None:
    xml = _submission(tmp_path)
    text = xml.read_text().splitlines(keepends=True)
    text.insert(1, '<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>\n')
    at = next(i for i, line in enumerate(text) if "elapsedTime" in line)
    text[at] = text[at].replace('elapsedTime="5"', 'elapsedTime="&ext;"')
    bad = tmp_path / "entity.xml"
    bad.write_text("".join(text))
    problems = validate_submission(bad)
    assert [p.line for p in problems] == [2, at + 1] and all("entity" in p.message for p in problems)
    done = _cli("validate", str(bad))
    assert done.exit_code == 1 and "entity.xml:2: [xml] entity <!ENTITY" in done.output
    done = _cli("score", "--qrels", str(bundled_qrels("tv21")), str(bad))
    assert done.exit_code == 2 and "entity.xml:2: entity <!ENTITY" in done.stderr and "cyfunction" not in done.stderr


# --- item 14: gzip and standard input --------------------------------------------------------


def test_gzipped_run_and_qrels_and_standard_input(tmp_path: Path) -> None:
    run_gz, qrels_gz = tmp_path / "run.txt.gz", tmp_path / "qrels.gz"
    run_gz.write_bytes(gzip.compress(bundled_runs()[0].read_bytes()))
    qrels_gz.write_bytes(gzip.compress(bundled_qrels("tv21").read_bytes()))
    expected = (GOLDEN / "expected" / "real_tv21_rucmm.txt").read_text()
    done = _cli("score", "--qrels", str(qrels_gz), "--format", "sample-eval", str(run_gz))
    assert done.exit_code == 0 and done.stdout == expected
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for data in (bundled_runs()[0].read_bytes(), gzip.compress(bundled_runs()[0].read_bytes())):
        child = subprocess.run(
            [sys.executable, "-m", "avsbench", "score", "--qrels", str(qrels_gz), "--format", "sample-eval", "-"],
            input=data,
            capture_output=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert child.returncode == 0 and child.stdout.decode() == expected, child.stderr


# --- item 15: what the file is ---------------------------------------------------------------


def test_validate_on_a_trec_run_says_what_it_is() -> None:
    done = _cli("validate", str(bundled_runs()[0]))
    assert done.exit_code == 1
    assert "this is a TREC run file" in done.output and "avsbench submit" in done.output
    assert "well-formed" not in done.output


def test_score_on_a_trec_run_named_like_xml_reads_it_by_content(tmp_path: Path) -> None:
    named = tmp_path / "run.xml"
    named.write_bytes(bundled_runs()[0].read_bytes())
    done = _cli("score", "--qrels", str(bundled_qrels("tv21")), "--format", "sample-eval", str(named))
    assert done.exit_code == 0 and done.stdout == (GOLDEN / "expected" / "real_tv21_rucmm.txt").read_text()


def test_bundled_runs_are_not_named_like_xml_submissions() -> None:
    for path in bundled_runs():
        assert path.name.endswith(".txt") and RunFile.read(path).source_format == "trec"


# --- item 17: validate groups problems by kind -----------------------------------------------


def test_validate_groups_problems_by_kind(tmp_path: Path) -> None:
    xml = _submission(tmp_path)
    text = xml.read_text()
    bad = tmp_path / "bad.xml"
    bad.write_text(text.replace('shotId="shot0', 'shotId="Shot0'))  # 20,000 malformed shot ids
    done = _cli("validate", str(bad))
    assert done.exit_code == 1
    lines = done.output.splitlines()
    malformed = [line for line in lines if "malformed shotId" in line]
    assert len(malformed) == 21 and "and 19980 more of this kind (20000 in all)" in malformed[-1]
    assert len(lines) < 60 and "kind(s)" in done.stderr
    everything = _cli("validate", "--all", str(bad))
    assert len([line for line in everything.output.splitlines() if "malformed shotId" in line]) == 20000


def test_a_run_file_of_one_huge_line_is_one_error(tmp_path: Path) -> None:
    big = tmp_path / "oneline.run"
    big.write_bytes(b"1661 Q0 shot1_1 1 1 x " * 100_000)
    try:
        RunFile.read(big)
    except InputFormatError as exc:
        assert "line longer than" in str(exc) and exc.line == 1
    else:
        raise AssertionError("no error")
