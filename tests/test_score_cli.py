"""``avsbench score`` and :func:`avsbench.eval.scoring.score_runs`: formats, qrels lookup, year
inference and grouping, warnings on stderr, one-line errors, and no torch."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.collection import find_qrels
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.topics import get_year
from avsbench.errors import ConfigError, MissingDataError
from avsbench.eval.scoring import score_runs

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "sample_eval"
RUCMM, GODSPEED = (str(p) for p in bundled_runs())


def cli(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(main, ["score", *args], catch_exceptions=False)


@pytest.fixture
def root16(tmp_path) -> Path:
    """A data root holding the (synthetic, golden) 2016-style qrels where avsbench looks for them."""
    text = tmp_path / "root" / "iacc.3" / "TextData"
    text.mkdir(parents=True)
    shutil.copy(GOLDEN / "qrels" / "iacc16.qrels", text / "avs.qrels.tv16")
    return tmp_path / "root"


def test_default_table_scores_the_bundled_runs_with_the_bundled_qrels():
    result = cli(RUCMM, GODSPEED, env={"AVSBENCH_ROOT": "/nonexistent-root", "COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "AVS 2021" in result.stdout
    for name, ap, ndcg in (
        ("test_run.tv21.RUCMM.txt", "0.3430", "0.5360"),
        ("test_run.tv21.GodSpeed.txt", "0.3490", "0.5390"),
    ):
        row = next(line for line in result.stdout.splitlines() if name in line)
        assert ap in row and ndcg in row and "20" in row
    assert result.stderr == ""


def test_sample_eval_format_is_the_perl_text_per_run():
    result = cli("--format", "sample-eval", "--per-topic", RUCMM, GODSPEED)
    expected = (GOLDEN / "expected" / "real_tv21_rucmm.q.txt").read_text() + (
        GOLDEN / "expected" / "real_tv21_godspeed.q.txt"
    ).read_text()
    assert result.stdout == expected


@pytest.mark.parametrize("name", ["toy_spec", "iacc16_missing_and_foreign_topics", "iacc17g_duplicate_shots"])
def test_hook_command_prints_the_expected_bytes(name):
    case = next(c for c in csv.DictReader(open(GOLDEN / "cases.tsv"), delimiter="\t") if c["name"] == name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "avsbench",
            "score",
            "--format",
            "sample-eval",
            "--per-topic",
            "--qrels",
            str(GOLDEN / case["qrels"]),
            str(GOLDEN / case["run"]),
        ],
        capture_output=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout == (GOLDEN / case["expected_q"]).read_bytes()
    plain = cli("--format", "sample-eval", "--qrels", str(GOLDEN / case["qrels"]), str(GOLDEN / case["run"]))
    assert plain.stdout == (GOLDEN / case["expected_all"]).read_text()


def test_json_csv_tsv_carry_full_precision():
    scored = score_runs([RUCMM])[0]
    data = json.loads(cli("--format", "json", "--per-topic", RUCMM).stdout)
    (entry,) = data["runs"]
    assert entry["summary"]["infAP"] == scored.result.inf_ap and entry["year"] == "2021"
    assert entry["per_topic"]["1661"]["infAP"] == scored.result.per_topic["1661"].inf_ap
    assert entry["warnings"] == [] and entry["missing_topics"] == []
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        rows = list(csv.DictReader(io.StringIO(cli("--format", fmt, "--per-topic", RUCMM).stdout), delimiter=sep))
        assert len(rows) == 21 and rows[0]["topic"] == "all"
        assert float(rows[0]["infAP"]) == scored.result.inf_ap
        assert float(rows[0]["iP10"]) == scored.result.precision_at[10]
        first = rows[1]
        assert first["topic"] == "1661" and first["text"].startswith("a hang glider")
        assert float(first["infNDCG"]) == scored.result.per_topic["1661"].inf_ndcg


def test_per_topic_table_shows_topic_text():
    out = cli("--per-topic", RUCMM, env={"COLUMNS": "160"}).stdout
    assert "1661 a hang glider floating in the sky" in out and "0.3945" in out


def test_runs_of_several_years_are_grouped_and_warnings_go_to_stderr(root16):
    run16 = str(GOLDEN / "runs" / "iacc16_missing_and_foreign_topics.run")
    result = cli("--rootpath", str(root16), RUCMM, run16, env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert result.stdout.index("AVS 2021") < result.stdout.index("AVS 2016")
    assert "0.3539" in result.stdout  # the golden infAP of that run
    assert "8 qrels topic(s) missing from the run" in result.stderr
    assert "run topic(s) not in the qrels (501, 01505, 1531, 1599, 15050)" in result.stderr
    assert "avsbench: warning:" in result.stderr and "Traceback" not in result.stderr


def test_missing_as_zero_changes_the_mean(root16):
    run16 = str(GOLDEN / "runs" / "iacc16_empty_and_tiny_topics.run")
    normal, zero = (score_runs([run16], rootpath=root16, missing_as_zero=flag)[0] for flag in (False, True))
    assert normal.result.num_topics == 29 and zero.result.num_topics == 30
    assert zero.result.inf_ap == pytest.approx(normal.result.inf_ap * 29 / 30)
    assert "counted as 0" in zero.warnings[0]
    text = cli("--rootpath", str(root16), "--missing-as-zero", "--format", "json", run16).stdout
    assert json.loads(text)["runs"][0]["num_topics"] == 30


def test_duplicate_and_over_1000_warnings():
    dup = score_runs([GOLDEN / "runs" / "iacc17g_duplicate_shots.run"], qrels=GOLDEN / "qrels" / "iacc17g.qrels")[0]
    assert any("duplicate shot line(s)" in w for w in dup.warnings)
    over = score_runs([GOLDEN / "runs" / "v3c1_19_over1000_lines.run"], qrels=GOLDEN / "qrels" / "v3c1_19.qrels")[0]
    assert any("more than 1000 distinct shots" in w for w in over.warnings)


def test_year_and_qrels_resolution(root16, tmp_path, monkeypatch):
    assert find_qrels(get_year(2021), tmp_path / "empty") == bundled_qrels("tv21")
    assert find_qrels(get_year(2016), root16) == root16 / "iacc.3" / "TextData" / "avs.qrels.tv16"
    monkeypatch.setenv("AVSBENCH_ROOT", str(root16))
    assert find_qrels(get_year("tv16")) == root16 / "iacc.3" / "TextData" / "avs.qrels.tv16"
    with pytest.raises(MissingDataError) as err:
        find_qrels(get_year(2019), tmp_path / "empty")
    assert "avs.qrels.tv19" in str(err.value) and str(tmp_path / "empty" / "v3c1" / "TextData") in str(err.value)
    # --year overrides inference: a 2021 run scored as 2016 has no topic in common
    scored = score_runs([RUCMM], year=2016, rootpath=root16, lenient=True)[0]
    assert scored.year.key == "2016" and scored.result.num_topics == 0
    with pytest.raises(ConfigError, match="cannot infer the AVS year"):
        score_runs([GOLDEN / "runs" / "toy_spec.run"])
    toy = score_runs([GOLDEN / "runs" / "toy_spec.run"], qrels=GOLDEN / "qrels" / "toy.qrels")[0]
    assert toy.year is None and f"{toy.result.inf_ap:.4f}" == "0.5556"


def test_xml_runs_are_scored(tmp_path):
    lines = (GOLDEN / "runs" / "toy_spec.run").read_text().split("\n")
    items = "".join(f'<item seqNum="{i}" shotId="{line.split()[2]}"/>' for i, line in enumerate(lines, 1) if line)
    path = tmp_path / "toy.xml"
    path.write_text(
        f'<videoAdhocSearchResults><videoAdhocSearchRunResult pid="T"><videoAdhocSearchTopicResult tNum="7" '
        f'elapsedTime="1">{items}</videoAdhocSearchTopicResult></videoAdhocSearchRunResult></videoAdhocSearchResults>'
    )
    qrels = tmp_path / "toy.qrels"
    qrels.write_text((GOLDEN / "qrels" / "toy.qrels").read_text().replace("7 0", "17 0"))
    out = cli("--format", "sample-eval", "--qrels", str(qrels), str(path)).stdout
    assert out.splitlines()[0] == "infAP\t\tall\t\t0.5556"


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"run": "7 Q0 a 1 3 t\n7 Q0 b 2\n"}, "bad.run:2: line has 4 fields"),
        ({"run": "7 Q0 a 1 abc t\n"}, "bad.run:1: score 'abc' is not a number"),
        ({"run": ""}, "bad.run: empty run file"),
        ({"run": " 7 Q0 a 1 3 t\n"}, "bad.run:1: run file starts with whitespace"),
        ({"run": "\n7 Q0 a 1 3 t\n"}, "bad.run:1: run file starts with whitespace"),
        ({"run": b"7 Q0 a 1 3 t\n\x00\x00\xff\x13garbage\n"}, "bad.run:2: binary data"),
        ({"run": "8 Q0 a 1 3 t\n"}, "none of the run's topics (8) is a topic of the qrels"),
        (
            {"run": "7 Q0 a 1 3 t\n", "qrels": "17 0 a 1 1\n"},
            'the run uses plain topic numbers, the qrels "1" + number',
        ),
        ({"run": b"\xef\xbb\xbf7 Q0 a 1 3 t\n"}, "bad.run:1: run file starts with a UTF-8 byte-order mark"),
        (
            {"run": "7 Q0 a 1 3 t\n", "qrels": "7 0 a 1 1\n7 0 b 1 yes\n"},
            "bad.qrels:2: judgment 'yes' is not an integer",
        ),
        ({"run": "7 Q0 a 1 3 t\n", "qrels": "\n7 0 a 1 1\n"}, "bad.qrels:1: qrels file starts with whitespace"),
        (
            {"run": "<videoAdhocSearchResults><videoAdhocSearchRunResult>\n<oops></videoAdhocSearchResults>"},
            "bad.run:2: unexpected element <oops>",
        ),
        ({"run": None}, "bad.run: run file not found"),
        ({"run": "7 Q0 a 1 3 t\n", "qrels": None}, "bad.qrels: qrels file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, files, words):
    paths = {}
    for kind in ("run", "qrels"):
        content = files.get(kind, (GOLDEN / "qrels" / "toy.qrels").read_text() if kind == "qrels" else None)
        path = tmp_path / f"bad.{kind}"
        if content is not None:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        paths[kind] = path
    result = CliRunner().invoke(main, ["score", "--qrels", str(paths["qrels"]), str(paths["run"])])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("avsbench: error: ") and words in line
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_lenient_reproduces_the_perl_script_silently(tmp_path):
    run = tmp_path / "r.run"
    run.write_text("8 Q0 a 1 3 t\n")
    result = cli("--lenient", "--format", "sample-eval", "--qrels", str(GOLDEN / "qrels" / "toy.qrels"), str(run))
    assert result.exit_code == 0 and result.stdout == ""  # Perl prints nothing (and dies)
    assert "no topic of the run is in the qrels" in result.stderr
    toy_qrels = (GOLDEN / "qrels" / "toy.qrels").read_text()
    blank_first = tmp_path / "blank.qrels"
    blank_first.write_text("\n" + toy_qrels)
    for run_text, qrels in (
        ("", GOLDEN / "qrels" / "toy.qrels"),
        (" 7 Q0 x 1 4 demo\n", GOLDEN / "qrels" / "toy.qrels"),
        ((GOLDEN / "runs" / "toy_spec.run").read_text(), blank_first),
    ):
        run.write_text(run_text)  # golden README: Perl dies dividing by zero, nothing on stdout
        result = cli("--lenient", "--format", "sample-eval", "--qrels", str(qrels), str(run))
        assert (result.exit_code, result.stdout) == (0, "")
    run.write_text("7 Q0 x 1 4 demo\n7 Q0 a 2 abc demo\n7 Q0 e 3 2 demo\n7 Q0 c 4 1 demo\n")
    result = cli(
        "--lenient", "--format", "sample-eval", "--per-topic", "--qrels", str(GOLDEN / "qrels" / "toy.qrels"), str(run)
    )
    assert result.stdout.startswith("infAP\t\t7\t\t0.5463\ninfNDCG\t\t7\t\t0.6714\n")


def test_score_does_not_import_torch():
    code = (
        "import sys\n"
        "import avsbench.cli.score\n"
        "from avsbench.cli import main\n"
        f"main(['score', '--format', 'json', {RUCMM!r}], standalone_mode=False)\n"
        "main(['score', {!r}], standalone_mode=False)\n".format(RUCMM)
        + "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr


def test_score_runs_reports_progress_per_file():
    calls = []
    scored = score_runs([RUCMM, GODSPEED], on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)] and [s.name for s in scored] == [
        "test_run.tv21.RUCMM.txt",
        "test_run.tv21.GodSpeed.txt",
    ]
