"""``compare``: numbers equal the scorer's, per-year qrels, significance, coverage, formats, plots."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.qrels import Qrels
from avsbench.data.resources import bundled_qrels, bundled_runs
from avsbench.data.runs import RunFile
from avsbench.errors import ConfigError, EvaluationError, MissingDataError
from avsbench.eval.compare import compare_runs as compute_comparison
from avsbench.eval.leaderboard import leaderboard_entries, reference_entries
from avsbench.eval.sample_eval import evaluate
from avsbench.eval.scoring import score_runs
from avsbench.eval.significance import bootstrap_ci, holm_adjust, randomization_test
from avsbench.report.compare_report import ComparisonReport, build_comparison_report
from avsbench.report.plots import plot_per_topic, plot_precision_curve, precision_curves

RUCMM, GODSPEED = bundled_runs()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tv21_qrels() -> Qrels:
    return Qrels.read(bundled_qrels("tv21"))


@pytest.fixture(scope="module")
def real_report() -> ComparisonReport:
    return build_comparison_report([RUCMM, GODSPEED], permutations=2000)


def test_compare_equals_score_on_the_real_2021_runs(real_report: ComparisonReport) -> None:
    c = real_report.comparison
    qrels = Qrels.read(bundled_qrels("tv21"))
    assert c.years == ["2021"] and c.baseline == RUCMM.name
    for path in (RUCMM, GODSPEED):
        scored = evaluate(qrels, RunFile.read(path))
        assert c.per_year.loc[path.name, "2021"] == scored.inf_ap
        assert c.per_year.loc[path.name, "2021 topics"] == scored.num_topics == 20
        per_topic = dict(zip(c.per_topic["topic"], c.per_topic[path.name]))
        assert per_topic == {t: r.inf_ap for t, r in scored.per_topic.items()}
        assert c.results[path.name]["2021"].iprec_at_recall == scored.iprec_at_recall
    for scored_run in score_runs([RUCMM, GODSPEED]):  # the library call behind `avsbench score`
        assert c.per_year.loc[scored_run.name, "2021"] == scored_run.result.inf_ap
        assert dict(zip(c.per_topic["topic"], c.per_topic[scored_run.name])) == {
            t: r.inf_ap for t, r in scored_run.result.per_topic.items()
        }
    # ... and with NIST's printed values and the computed leaderboard entries
    assert f"{c.per_year.loc[RUCMM.name, '2021']:.4f}" == "0.3430"
    assert f"{c.per_year.loc[GODSPEED.name, '2021']:.4f}" == "0.3490"
    published = {e.run: e.value for e in leaderboard_entries(2021)}
    for path in (RUCMM, GODSPEED):
        nist_name = {GODSPEED.name: "F_M_C_D_GodSpeed.21_1"}.get(path.name, path.name)  # the bundled file was renamed
        assert round(c.per_year.loc[path.name, "2021"], 4) == published[nist_name]
    assert dict(zip(c.per_topic["topic"], c.per_topic[RUCMM.name]))["1661"] == pytest.approx(0.3945, abs=5e-5)


def test_differences_wins_and_significance_match_the_statistics_module(real_report: ComparisonReport) -> None:
    c = real_report.comparison
    delta = c.per_topic[f"Δ {GODSPEED.name}"].to_numpy()
    np.testing.assert_allclose(delta, c.per_topic[GODSPEED.name] - c.per_topic[RUCMM.name])
    wtl = c.wins_ties_losses.loc[GODSPEED.name]
    assert (wtl["wins"], wtl["ties"], wtl["losses"]) == (
        int((delta > 5e-5).sum()),
        int((abs(delta) <= 5e-5).sum()),
        int((delta < -5e-5).sum()),
    )
    assert wtl["wins"] + wtl["ties"] + wtl["losses"] == 20
    row = c.significance.iloc[0]
    a, b = c.per_topic[GODSPEED.name].to_numpy(), c.per_topic[RUCMM.name].to_numpy()
    assert row["p"] == randomization_test(a, b, permutations=2000, seed=42).p_value
    ci = bootstrap_ci(a, b, seed=42)
    assert (row["ci low"], row["ci high"]) == (ci.low, ci.high)
    assert row["mean Δ"] == pytest.approx(c.per_year.loc[GODSPEED.name, "2021"] - c.per_year.loc[RUCMM.name, "2021"])


def test_coverage_of_the_real_runs(real_report: ComparisonReport) -> None:
    coverage = real_report.comparison.coverage
    assert len(coverage) == 40
    assert ((coverage["sampled@100"] <= coverage["judged@100"]) & (coverage["judged@100"] <= 1.0)).all()
    # the two runs were pooled by NIST: their top 100 lies entirely in the judged pool
    assert (coverage["judged@100"] == 1.0).all()
    qrels = Qrels.read(bundled_qrels("tv21"))
    run = RunFile.read(RUCMM)
    top = [shot for shot, _ in run.topics["1661"].ranked()[:1000]]
    judgments = qrels["1661"].judgment
    row = coverage[(coverage["run"] == RUCMM.name) & (coverage["topic"] == "1661")].iloc[0]
    assert row["judged@1000"] == sum(s in judgments for s in top) / len(top)
    assert row["sampled@1000"] == sum(judgments.get(s, -1) >= 0 for s in top) / len(top)


# --- a small two-year collection under a temporary data root ----------------------------------


def _write_qrels(path: Path, topics: dict[str, dict[str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{t} 0 {shot} 1 {j}\n" for t, shots in topics.items() for shot, j in shots.items()))


def _write_run(path: Path, topics: dict[str, list[str]], tag: str) -> Path:
    lines = [f"{t} Q0 {shot} {r} {100 - r} {tag}\n" for t, shots in topics.items() for r, shot in enumerate(shots, 1)]
    path.write_text("".join(lines))
    return path


@pytest.fixture()
def two_years(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "root"
    pool = {f"shot{i}_1": (1 if i % 2 else 0) for i in range(1, 9)} | {"shot9_1": -1}
    _write_qrels(root / "v3c1" / "TextData" / "avs.qrels.tv19", {"1611": pool, "1612": pool})
    _write_qrels(root / "v3c1" / "TextData" / "avs.qrels.tv20", {"1641": pool, "1642": pool, "1643": pool})
    good = [f"shot{i}_1" for i in (1, 3, 5, 7, 2, 4)]
    bad = [f"shot{i}_1" for i in (2, 4, 9, 1, 3)] + ["shot77_1"]
    mixed = [f"shot{i}_1" for i in (1, 2, 3, 4, 5)] + ["shot88_1"]
    runs = [
        _write_run(tmp_path / "base.txt", {t: bad for t in ("1611", "1612", "1641", "1642", "1643")}, "base"),
        _write_run(tmp_path / "good.txt", {t: good for t in ("1611", "1612", "1641", "1642", "1643")}, "good"),
        _write_run(tmp_path / "mixed.txt", {"1611": mixed, "1612": good, "1641": mixed, "1642": bad}, "mixed"),
    ]
    return root, runs


def test_each_year_is_scored_with_its_own_qrels(two_years: tuple[Path, list[Path]]) -> None:
    root, runs = two_years
    c = compute_comparison(runs, baseline=runs[0], rootpath=root, permutations=1000, bootstrap_samples=1000)
    assert c.years == ["2019", "2020"]
    for year_key, edition in (("2019", "tv19"), ("2020", "tv20")):
        qrels = Qrels.read(root / "v3c1" / "TextData" / f"avs.qrels.{edition}")
        for path in runs:
            scored = evaluate(qrels, RunFile.read(path))
            assert c.per_year.loc[path.name, year_key] == scored.inf_ap
            assert c.per_year.loc[path.name, f"{year_key} topics"] == scored.num_topics
    assert c.per_year.loc["mixed.txt", "topics"] == 4 and c.per_year.loc["good.txt", "topics"] == 5
    assert len(c.warnings) == 1 and c.warnings[0].startswith(
        "2020: mixed.txt: 1 qrels topic(s) missing from the run (1643)"
    )
    assert c.per_year.loc["good.txt", "mean over years"] == pytest.approx(
        c.per_year.loc["good.txt", ["2019", "2020"]].mean()
    )
    assert set(c.references) == {"2019"}  # nothing published is shipped for 2020
    assert c.references["2019"] == reference_entries(2019) and c.synthetic_years == []
    # significance per year and over all topics, Holm over the two compared runs per scope
    sig = c.significance.set_index(["scope", "run"])
    assert set(sig.index.get_level_values("scope")) == {"2019", "2020", "all"}
    assert sig.loc[("all", "good.txt"), "topics"] == 5 and sig.loc[("all", "mixed.txt"), "topics"] == 4
    for scope in ("2019", "2020", "all"):
        ps = [sig.loc[(scope, r), "p"] for r in ("good.txt", "mixed.txt")]
        assert [sig.loc[(scope, r), "p (Holm)"] for r in ("good.txt", "mixed.txt")] == holm_adjust(ps)
    assert sig.loc[("all", "good.txt"), "exact"]  # 2**5 sign patterns <= 1000: enumerated
    assert sig.loc[("all", "good.txt"), "mean Δ"] > 0


def test_coverage_by_hand(two_years: tuple[Path, list[Path]]) -> None:
    root, runs = two_years
    c = compute_comparison(runs[:1], rootpath=root, year="2019")
    row = c.coverage[c.coverage["topic"] == "1611"].iloc[0]
    # base: shot2, shot4, shot9 (-1), shot1, shot3 in the pool, shot77 outside it
    assert row["returned"] == 6
    assert row["judged@100"] == pytest.approx(5 / 6) and row["sampled@100"] == pytest.approx(4 / 6)
    assert c.baseline is None and c.significance.empty


def test_year_and_qrels_options(two_years: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, runs = two_years
    only_2020 = compute_comparison(runs, year=2020, rootpath=root)
    assert only_2020.years == ["2020"] and len(only_2020.per_topic) == 3
    explicit = compute_comparison(runs, qrels=root / "v3c1" / "TextData" / "avs.qrels.tv19", rootpath=tmp_path)
    assert explicit.years == ["2019"]
    assert explicit.per_year["2019"].tolist() == only_2020_free(runs, root)
    with pytest.raises(ConfigError):
        compute_comparison(runs, year="2019,2020", qrels=root / "v3c1" / "TextData" / "avs.qrels.tv19")
    with pytest.raises(MissingDataError, match="no qrels for 2019"):
        compute_comparison(runs, year=2019, rootpath=tmp_path / "empty")


def only_2020_free(runs: list[Path], root: Path) -> list[float]:
    qrels = Qrels.read(root / "v3c1" / "TextData" / "avs.qrels.tv19")
    return [evaluate(qrels, RunFile.read(p)).inf_ap for p in runs]


def test_runs_and_qrels_of_different_years(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "r.txt", {"1611": ["shot1_1"]}, "x")
    with pytest.raises(EvaluationError):
        compute_comparison([run], qrels=bundled_qrels("tv21"))


def test_baseline_outside_the_runs_is_added_first(two_years: tuple[Path, list[Path]]) -> None:
    root, runs = two_years
    c = compute_comparison(runs[1:], baseline=runs[0], rootpath=root, permutations=500, bootstrap_samples=500)
    assert c.runs[0] == "base.txt" and c.baseline == "base.txt"
    by_name = compute_comparison(runs, baseline="mixed.txt", rootpath=root, permutations=500, bootstrap_samples=500)
    assert by_name.baseline == "mixed.txt" and set(by_name.significance["run"]) == {"base.txt", "good.txt"}


def test_significance_is_reproducible_with_the_seed(tv21_qrels: Qrels) -> None:
    def significance(seed: int):
        return compute_comparison(
            [RUCMM, GODSPEED], qrels=tv21_qrels, permutations=3000, bootstrap_samples=2000, seed=seed
        ).significance

    first = significance(7)
    assert first.equals(significance(7))
    other = significance(8)
    assert first["p"].iloc[0] != other["p"].iloc[0] and first["ci low"].iloc[0] != other["ci low"].iloc[0]


# --- renderings -------------------------------------------------------------------------------


def test_renderings_parse(real_report: ComparisonReport) -> None:
    data = json.loads(real_report.to_json())
    assert [r["name"] for r in data["runs"]] == [RUCMM.name, GODSPEED.name]
    assert data["per_year"][0]["2021"] == real_report.comparison.per_year.loc[RUCMM.name, "2021"]
    assert len(data["per_topic"]) == 20 and data["references"]["2021"][0]["confidence"] == "C"
    rows = list(csv.DictReader(io.StringIO(real_report.to_csv("per_topic"))))
    assert len(rows) == 20 and float(rows[0][RUCMM.name]) == real_report.comparison.per_topic[RUCMM.name].iloc[0]
    markdown = real_report.to_markdown()
    assert "| 661 | a hang glider floating in the sky on a sunny day |" in markdown
    assert "a parachutist descending towards a field on the ground in the daytime" in markdown  # full text
    latex = real_report.to_latex(per_topic=False)
    assert latex.count("\\begin{tabular}") == 4 and "test\\_run.tv21.RUCMM.txt" in latex
    table = real_report.to_table()
    assert "0.3430" in table and "0.3490" in table and "Judged coverage" in table
    assert "in the daytime" not in table and "…" in table  # long topic texts are cut on a terminal
    assert real_report.to_dataframe("coverage_summary")["topics"].tolist() == [20, 20]
    with pytest.raises(ConfigError):
        real_report.to_dataframe("nope")


def test_cli_json_equals_the_library_on_the_real_runs(real_report: ComparisonReport) -> None:
    result = CliRunner().invoke(
        main, ["compare", str(RUCMM), str(GODSPEED), "--permutations", "2000", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["baseline"] == RUCMM.name
    assert data["per_year"] == json.loads(real_report.to_json())["per_year"]
    assert data["significance"] == json.loads(real_report.to_json())["significance"]


@pytest.mark.needs_plot
def test_cli_formats_and_plot(two_years: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, runs = two_years
    runner = CliRunner()
    base = ["compare", *map(str, runs), "--rootpath", str(root), "--permutations", "500"]
    as_csv = runner.invoke(main, [*base, "--format", "csv", "--no-per-topic"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [r["run"] for r in rows] == ["base.txt", "good.txt", "mixed.txt"]
    assert {"2019", "2020", "mean over years"} <= set(rows[0])
    per_topic = list(csv.DictReader(io.StringIO(runner.invoke(main, [*base, "--format", "csv"]).output)))
    assert len(per_topic) == 5 and "Δ good.txt" in per_topic[0]
    as_latex = runner.invoke(main, [*base, "--format", "latex", "--baseline", str(runs[1])])
    assert as_latex.exit_code == 0 and "good.txt (baseline)" in as_latex.output
    assert as_latex.output.count("\\begin{tabular}") == as_latex.output.count("\\end{tabular}") == 5
    as_markdown = runner.invoke(main, [*base, "--format", "markdown", "--year", "2020"])
    assert "### Mean infAP per year" in as_markdown.output and "| 641 |" in as_markdown.output
    plot = tmp_path / "cmp.png"
    table = runner.invoke(main, [*base, "--plot", str(plot)])
    assert table.exit_code == 0 and "Mean infAP per year" in table.output
    data = plot.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 300 and height > 300


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["compare", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2 and "nope.txt" in missing.output and "Traceback" not in missing.output
    bad = tmp_path / "bad.txt"
    bad.write_text("1661 Q0 shot1_1 1\n")
    malformed = runner.invoke(main, ["compare", str(bad)])
    assert malformed.exit_code == 2 and "bad.txt:1" in malformed.output
    wrong_plot = runner.invoke(main, ["compare", str(RUCMM), "--plot", str(tmp_path / "x.gif")])
    assert wrong_plot.exit_code == 2 and not (tmp_path / "x.gif").exists()


@pytest.mark.needs_plot
def test_plots_write_pngs(real_report: ComparisonReport, tmp_path: Path) -> None:
    for draw, name in ((plot_per_topic, "bars.png"), (plot_precision_curve, "curve.png")):
        path = draw(real_report, tmp_path / name)
        assert path.read_bytes()[:8] == PNG_SIGNATURE
    curves = precision_curves(real_report.comparison)
    assert curves[RUCMM.name] == list(real_report.comparison.results[RUCMM.name]["2021"].iprec_at_recall)


def test_missing_matplotlib_is_a_clear_error(
    real_report: ComparisonReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match="matplotlib"):
        plot_per_topic(real_report, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.needs_plot
def test_comparison_commands_do_not_import_torch(two_years: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, runs = two_years
    code = (
        "import sys\n"
        "import avsbench.cli.compare, avsbench.eval.compare, avsbench.eval.fusion, avsbench.eval.significance\n"
        "import avsbench.eval.leaderboard, avsbench.report.compare_report, avsbench.report.plots\n"
        "from click.testing import CliRunner\n"
        "from avsbench.cli import main\n"
        "root, plot, fused, *runs = sys.argv[1:]\n"
        "r = CliRunner().invoke(main, ['compare', *runs, '--rootpath', root, '--permutations', '100', '--plot', "
        "plot])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert CliRunner().invoke(main, ['fuse', *runs, '--method', 'rrf', '--out', fused]).exit_code == 0\n"
        "assert CliRunner().invoke(main, ['leaderboard']).exit_code == 0\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    argv = [str(root), str(tmp_path / "p.png"), str(tmp_path / "fused.txt"), *map(str, runs)]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p.png").is_file() and (tmp_path / "fused.txt").is_file()


def test_synthetic_qrels_get_no_published_reference_rows(two_years: tuple[Path, list[Path]]) -> None:
    root, runs = two_years
    (root / "v3c1" / "SYNTHETIC.md").write_text("generated\n")
    report = build_comparison_report(runs, rootpath=root, year=2019, permutations=200)
    assert report.comparison.synthetic_years == ["2019"] and report.comparison.references == {}
    assert "SYNTHETIC" in report.to_markdown(per_topic=False)
    assert json.loads(report.to_json())["synthetic_years"] == ["2019"]
    with pytest.raises(MissingDataError):  # a synthetic collection never falls back to bundled qrels
        compute_comparison([RUCMM], rootpath=root)


def test_run_objects_in_memory_compare_like_their_files(tv21_qrels: Qrels, tmp_path: Path) -> None:
    from avsbench.eval.fusion import fuse

    fused = fuse([RunFile.read(RUCMM), RunFile.read(GODSPEED)], method="rrf", tag="rrf")
    fused.write(tmp_path / "rrf.txt")
    options = {"qrels": tv21_qrels, "permutations": 500, "bootstrap_samples": 500}
    in_memory = compute_comparison([fused, RUCMM], baseline=RUCMM.name, **options)
    on_disk = compute_comparison([tmp_path / "rrf.txt", RUCMM], baseline=RUCMM, **options)
    assert in_memory.runs == ["rrf", RUCMM.name] and in_memory.baseline == RUCMM.name
    assert in_memory.per_year.loc["rrf", "2021"] == on_disk.per_year.loc["rrf.txt", "2021"]
    assert in_memory.significance["p"].tolist() == on_disk.significance["p"].tolist()
    with pytest.raises(ConfigError, match="same name"):
        compute_comparison([RUCMM, RUCMM])
