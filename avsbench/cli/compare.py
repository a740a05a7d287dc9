"""``avsbench compare``, ``avsbench leaderboard`` and ``avsbench fuse`` (no torch)."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from avsbench.cli.options import format_option, max_results_option, per_topic_option, rootpath_option
from avsbench.errors import ConfigError
from avsbench.report.formats import (
    COMPARISON,
    LEADERBOARD,
    RenderOptions,
    format_help,
    format_names,
    render,
    terminal_width,
)


def _emit(subject: str, fmt: str, value: object, options: RenderOptions) -> None:
    """Render ``value`` in ``fmt`` to stdout, tables fitted to the terminal (styled on a terminal)."""
    fitted = replace(options, width=terminal_width(), color=sys.stdout.isatty())
    click.echo(render(subject, fmt, value, fitted), nl=False)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False),
    help="Reference run (one of RUNS or another file); default: the first run.",
)
@click.option(
    "--year", default=None, help="Year(s) to score, e.g. 2019 or 2019,2020; default: inferred from the topic ids."
)
@click.option(
    "--qrels", type=click.Path(dir_okay=False), help="Qrels file (scores one year); default: each year's own qrels."
)
@rootpath_option("Data root holding <collection>/TextData/avs.qrels.tvNN (default: ${env}, else ~/VisualSearch).")
@format_option(format_names(COMPARISON), help=format_help(COMPARISON))
@click.option(
    "--table",
    "csv_table",
    type=click.Choice(["per_year", "per_topic", "significance", "coverage", "coverage_summary", "wins_ties_losses"]),
    help="Table written by --format csv or jsonl (default: per_topic, or per_year with --no-per-topic).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write per-topic bars and the 11-point precision curve to this PNG.",
)
@per_topic_option("Show the per-topic table.", default=True, negatable=True)
@click.option(
    "-m",
    "--measure",
    "--metric",
    "metric",
    type=click.Choice(["infAP", "infNDCG"]),
    default="infAP",
    show_default=True,
    help="The measure compared.",
)
@max_results_option()
@click.option(
    "--permutations",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Randomization test permutations.",
)
@click.option(
    "--bootstrap-samples",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Bootstrap resamples of the confidence interval of each mean difference.",
)
@click.option(
    "--confidence",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence level of the intervals; a difference is starred when p (Holm) <= 1 - confidence.",
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Seed of the randomization test and the bootstrap."
)
def compare(
    runs,
    baseline,
    year,
    qrels,
    rootpath,
    fmt,
    csv_table,
    plot_path,
    per_topic,
    metric,
    max_results,
    permutations,
    bootstrap_samples,
    confidence,
    seed,
) -> None:
    """Compare runs per year and per topic, with significance and judged coverage."""
    from avsbench.report.compare_report import build_comparison_report
    from avsbench.report.plots import image_format, plot_comparison

    if plot_path:
        image_format(plot_path)  # a bad file name fails before any scoring
    report = build_comparison_report(
        list(runs),
        baseline,
        year=year,
        qrels=qrels,
        rootpath=rootpath,
        metric=metric,
        permutations=permutations,
        bootstrap_samples=bootstrap_samples,
        confidence=confidence,
        seed=seed,
        **({"max_results": max_results} if max_results else {}),
    )
    _emit(COMPARISON, fmt, report, RenderOptions(per_topic=per_topic, table=csv_table))
    if plot_path:
        plot_comparison(report.comparison, plot_path)
        click.echo(f"plot written to {plot_path}", err=True)


@click.command()
@click.option("--year", default=None, help="Only this year (2016-2021, progress).")
@format_option(format_names(LEADERBOARD), help=format_help(LEADERBOARD))
def leaderboard(year, fmt) -> None:
    """Published TRECVID AVS results (mean infAP), each with its source."""
    from avsbench.eval.leaderboard import leaderboard_entries

    entries = leaderboard_entries(year)
    if not entries and fmt == "table":
        click.echo(f"no published result for {year} in the bundled leaderboard", err=True)
        return
    _emit(LEADERBOARD, fmt, entries, RenderOptions())


def _parse_weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ConfigError(f"bad --weights {text!r}", expected="comma-separated numbers, e.g. 1,0.5") from None


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--method", type=click.Choice(["rrf", "combsum", "combmnz"]), required=True)
@click.option(
    "--norm",
    type=click.Choice(["minmax", "zscore", "rank"]),
    default=None,
    help="Score normalisation of combsum/combmnz (default minmax); not used by rrf.",
)
@click.option("--weights", default=None, help="One weight per run, comma-separated (default: all 1).")
@click.option("--k", "rrf_k", type=float, default=60.0, show_default=True, help="RRF constant.")
@click.option(
    "--depth", type=click.IntRange(min=1), default=1000, show_default=True, help="Shots read from each run per topic."
)
@click.option("--tag", default="fused", show_default=True, help="Run tag of the fused run.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Fused TREC run file (written atomically).")
def fuse(runs, method, norm, weights, rrf_k, depth, tag, out) -> None:
    """Late fusion of runs into a new, valid TREC run (ties broken the scorer's way)."""
    from avsbench.eval.fusion import fuse_files

    fused = fuse_files(
        list(runs),
        out,
        method=method,
        norm=norm,
        weights=_parse_weights(weights),
        k=rrf_k,
        depth=depth,
        tag=tag,
        on_warning=lambda message: click.echo(f"avsbench: warning: {message}", err=True),
    )
    click.echo(f"fused {len(runs)} runs ({method}) into {out}: {len(fused.topics)} topics", err=True)
