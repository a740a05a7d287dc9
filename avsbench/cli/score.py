"""``avsbench score``: score runs with the exact sample_eval port (never imports torch)."""

from __future__ import annotations

import sys

import click

from avsbench.cli.options import format_option, max_results_option, measure_option, per_topic_option, rootpath_option
from avsbench.eval.sample_eval import DEFAULT_MAX_RESULTS
from avsbench.eval.scoring import score_runs
from avsbench.eval.workers import jobs_for
from avsbench.progress import progress_bars
from avsbench.report.formats import SCORES, RenderOptions, format_help, format_names, render, terminal_width
from avsbench.report.score_output import SCORE_MEASURES


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--qrels",
    type=click.Path(dir_okay=False),
    help="Qrels file (default: the year's qrels under the data root, else the bundled 2021 qrels).",
)
@click.option("--year", help="AVS year of the runs (default: inferred from the topic ids), e.g. 2019 or progress.")
@rootpath_option()
@per_topic_option("Per-topic values too (with --format sample-eval: like sample_eval.pl -q).")
@format_option(format_names(SCORES), help=format_help(SCORES))
@measure_option(
    SCORE_MEASURES,
    help="Measure to show (repeat for several), e.g. -m infAP -m iP10; default: all (table: infAP, "
    "infNDCG, iP10, iP100).",
)
@max_results_option(
    f"Score only the first N distinct shots of each topic (trec_eval's -M; default {DEFAULT_MAX_RESULTS}, "
    "as NIST; infAP is then rescaled to N as sample_eval does)."
)
@click.option(
    "--missing-as-zero",
    is_flag=True,
    help="Count qrels topics absent from a run as 0 in its means (NIST leaves them out; "
    "sample-eval text then differs from the Perl script's).",
)
@click.option(
    "--lenient",
    is_flag=True,
    help="Read files like sample_eval.pl does (whitespace tokens, short lines shift later records, non-numeric "
    "scores are 0) and give zero scores instead of an error when no run topic is in the qrels.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0),
    default=0,
    help="Processes scoring the run files side by side (default 0: one per CPU core for 4 or more files).",
)
def score(runs, qrels, year, rootpath, per_topic, fmt, measures, max_results, missing_as_zero, lenient, jobs) -> None:
    """Score TREC or TRECVID XML runs: infAP, infNDCG, iP@k, exactly as NIST's sample_eval.pl.

    Warnings (missing or unknown topics, duplicate shots, more than 1000 shots) go to stderr.
    """
    options = {
        "qrels": qrels,
        "year": year,
        "rootpath": rootpath,
        "missing_as_zero": missing_as_zero,
        "lenient": lenient,
        "max_results": max_results or DEFAULT_MAX_RESULTS,
        "jobs": jobs_for(jobs, len(runs)),
    }
    with progress_bars(len(runs) > 1 and options["jobs"] == 1) as bars:  # a live bar is a thread: no forks then
        advance = bars("scoring", len(runs)) if bars else None
        scored = score_runs(list(runs), **options, on_progress=(lambda done, total: advance(1)) if advance else None)
    for s in scored:
        for warning in s.warnings:
            click.echo(f"avsbench: warning: {warning}", err=True)
    render_options = RenderOptions(
        per_topic=per_topic, measures=measures, width=terminal_width(), color=sys.stdout.isatty()
    )
    sys.stdout.write(render(SCORES, fmt, scored, render_options))
