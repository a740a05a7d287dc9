"""One registry of output formats (``avsbench.report.formats``) and the trec_eval conventions of
``score`` and ``compare``: --format trec_eval / jsonl, -m/--measure, -M/--max-results,
compare --confidence / --bootstrap-samples (issue 13, item 4)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.resources import bundled_runs
from avsbench.eval.scoring import score_runs
from avsbench.report import formats

REPO = Path(__file__).resolve().parent.parent
RUCMM, GODSPEED = (str(p) for p in bundled_runs())


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _format_choices(command: str) -> list[str]:
    cmd = main.get_command(click.Context(main), command)
    option = next(p for p in cmd.params if p.name == "fmt")
    return list(option.type.choices)


@pytest.mark.parametrize(
    ("command", "subject"),
    [("score", formats.SCORES), ("compare", formats.COMPARISON), ("leaderboard", formats.LEADERBOARD)],
)
def test_every_command_offers_the_registry_formats(command: str, subject: str) -> None:
    assert _format_choices(command) == list(formats.format_names(subject))
    for name in formats.format_names(subject):
        assert callable(formats.renderer(subject, name))


def test_new_formats_are_registered() -> None:
    assert {"trec_eval", "jsonl"} <= set(formats.format_names(formats.SCORES))
    assert "jsonl" in formats.format_names(formats.COMPARISON)


def test_unknown_format_for_a_subject_is_a_clear_error() -> None:
    with pytest.raises(Exception, match="no 'sample-eval' output for leaderboard"):
        formats.render(formats.LEADERBOARD, "sample-eval", [])


def test_machine_formats_import_neither_rich_nor_pandas() -> None:
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom avsbench.cli import main\n"
        f"for fmt in ('sample-eval', 'json', 'jsonl', 'trec_eval', 'csv'):\n"
        f"    r = CliRunner().invoke(main, ['score', '-q', '--format', fmt, {RUCMM!r}])\n"
        "    assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in ('rich', 'pandas', 'torch') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr


def test_trec_eval_lines_are_single_tab_and_agree_with_sample_eval() -> None:
    text = invoke("score", "--format", "trec_eval", "-q", RUCMM, GODSPEED).stdout
    lines = [line.split("\t") for line in text.splitlines()]
    assert all(len(fields) == 3 and all(fields) for fields in lines)
    assert lines[0] == ["runid", "all", Path(RUCMM).name] and lines[1] == ["num_q", "all", "20"]
    runs = [i for i, f in enumerate(lines) if f[0] == "runid"]
    assert len(runs) == 2
    first = lines[runs[0] : runs[1]]
    topics = [f[1] for f in first[2:]]
    assert topics.index("all") > 0 and set(topics[topics.index("all") :]) == {"all"}  # per-topic lines first
    sample_eval = invoke("score", "--format", "sample-eval", "-q", RUCMM).stdout
    by_key = {(m, t): v for m, t, v in first}
    se = {(f[0], f[1]): f[2] for f in (line.split() for line in sample_eval.splitlines())}
    for key in (("infAP", "all"), ("infNDCG", "all"), ("iP100", "all"), ("infAP", "1661"), ("num_ret", "all")):
        assert by_key[key] == se[key], key


def test_jsonl_has_one_value_per_line_at_full_precision() -> None:
    lines = [json.loads(line) for line in invoke("score", "--format", "jsonl", RUCMM, GODSPEED).stdout.splitlines()]
    scored = score_runs([RUCMM, GODSPEED])
    assert len(lines) == sum(len(s.result.measures()) for s in scored)
    first = next(r for r in lines if r["run"] == Path(GODSPEED).name and r["measure"] == "infAP")
    assert first == {
        "run": Path(GODSPEED).name,
        "year": "2021",
        "topic": "all",
        "measure": "infAP",
        "value": scored[1].result.inf_ap,
    }


def test_measure_picks_columns_and_lines() -> None:
    rows = list(
        csv.DictReader(io.StringIO(invoke("score", "--format", "csv", "-m", "iP10", "-m", "infAP", RUCMM).stdout))
    )
    assert [k for k in rows[0] if k.startswith(("inf", "iP", "iprec", "num", "inum"))] == ["iP10", "infAP"]
    trec = invoke("score", "--format", "trec_eval", "-q", "--measure", "infNDCG", RUCMM).stdout.splitlines()
    assert {line.split("\t")[0] for line in trec} == {"runid", "num_q", "infNDCG"} and len(trec) == 2 + 21
    sample_eval = invoke("score", "--format", "sample-eval", "-m", "infAP", RUCMM).stdout
    assert sample_eval == "infAP\t\tall\t\t0.3430\n"
    table = CliRunner(env={"COLUMNS": "120"}).invoke(main, ["score", "-m", "iP5", RUCMM]).stdout
    assert "iP5" in table and "infNDCG" not in table
    data = json.loads(invoke("score", "--format", "json", "-q", "-m", "infAP", RUCMM).stdout)
    assert list(data["runs"][0]["summary"]) == ["infAP"]
    assert set(data["runs"][0]["per_topic"]["1661"]) == {"infAP", "in_run"}


def test_unknown_measure_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["score", "-m", "map", RUCMM])
    assert result.exit_code == 2 and "'map'" in result.output


def test_max_results_is_trec_eval_minus_m() -> None:
    short = json.loads(invoke("score", "--format", "json", "-M", "100", RUCMM).stdout)["runs"][0]["summary"]
    full = json.loads(invoke("score", "--format", "json", RUCMM).stdout)["runs"][0]["summary"]
    assert short["infAP"] == score_runs([RUCMM], max_results=100)[0].result.inf_ap
    assert short["num_ret"] == 20 * 100 and full["num_ret"] > short["num_ret"]
    assert short["infAP"] != full["infAP"]


def test_compare_confidence_bootstrap_samples_and_measure() -> None:
    args = ["compare", RUCMM, GODSPEED, "--permutations", "500", "--bootstrap-samples", "300", "--confidence", "0.9"]
    data = json.loads(invoke(*args, "--format", "json", "-m", "infNDCG").stdout)
    assert data["settings"]["bootstrap_samples"] == 300 and data["settings"]["confidence"] == 0.9
    assert data["metric"] == "infNDCG"
    markdown = invoke(*args, "--format", "markdown").stdout
    assert "90% CI" in markdown and "p (Holm) <= 0.1." in markdown


def test_significance_star_follows_the_confidence_level() -> None:
    args = [
        "compare",
        RUCMM,
        GODSPEED,
        "--permutations",
        "200",
        "--bootstrap-samples",
        "200",
        "--format",
        "markdown",
        "--no-per-topic",
    ]

    def significance_row(confidence: str) -> str:
        return next(
            line
            for line in invoke(*args, "--confidence", confidence).stdout.splitlines()
            if line.startswith("| 2021 |")
        )

    # p (Holm) of the two 2021 runs is about 0.63: starred only where 1 - confidence is above it
    assert significance_row("0.95").endswith("|  |")
    assert significance_row("0.01").endswith("| * |")


def test_compare_jsonl_is_the_csv_table_as_json_lines() -> None:
    args = ["compare", RUCMM, GODSPEED, "--permutations", "200", "--bootstrap-samples", "200"]
    rows = [json.loads(line) for line in invoke(*args, "--format", "jsonl").stdout.splitlines()]
    table = list(csv.DictReader(io.StringIO(invoke(*args, "--format", "csv").stdout)))
    assert len(rows) == len(table) == 20 and list(rows[0]) == list(table[0])
    per_year = [
        json.loads(line) for line in invoke(*args, "--format", "jsonl", "--table", "per_year").stdout.splitlines()
    ]
    assert [r["run"] for r in per_year] == [Path(RUCMM).name, Path(GODSPEED).name]


def test_leaderboard_jsonl() -> None:
    rows = [
        json.loads(line) for line in invoke("leaderboard", "--format", "jsonl", "--year", "2021").stdout.splitlines()
    ]
    assert rows and {r["year"] for r in rows} == {"2021"} and all("source" in r for r in rows)
