"""``avsbench score``: score runs with the exact sample_eval port (never imports torch)."""

from __future__ import annotations

import csv
import io
import json
import sys

import click

from avsbench.cli.options import format_option, per_topic_option, rootpath_option
from avsbench.data.topics import all_topics, plain_topic_id
from avsbench.errors import UnknownIdError
from avsbench.eval.sample_eval import format_sample_eval
from avsbench.eval.scoring import ScoredRun, score_runs

FORMATS = ("table", "sample-eval", "json", "csv", "tsv")


def _topic_text(topic_id: str, topics: dict) -> str:
    try:
        topic = topics.get(plain_topic_id(topic_id))
    except UnknownIdError:
        return ""
    return topic.text if topic else ""


def render_delimited(scored: list[ScoredRun], per_topic: bool, delimiter: str) -> str:
    """One row per run (topic "all") and, with ``per_topic``, per topic; floats at full precision."""
    topics = all_topics() if per_topic else {}
    measure_names = list(scored[0].result.measures()) if scored else []
    header = ["run", "year", "qrels", "topic", "text", *measure_names, "topics_scored", "topics_missing", "in_run"]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    for s in scored:
        r = s.result
        year = s.year.key if s.year else ""
        writer.writerow([s.name, year, s.qrels_path, "all", "", *r.measures().values(), len(r.scored_topics), len(r.missing_topics), ""])
        if per_topic:
            for topic_id, t in r.per_topic.items():
                writer.writerow([s.name, year, s.qrels_path, topic_id, _topic_text(topic_id, topics), *t.measures().values(), "", "", t.in_run])
    return buf.getvalue()


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--qrels", type=click.Path(dir_okay=False), help="Qrels file (default: the year's qrels under the data root, else the bundled 2021 qrels).")
@click.option("--year", help="AVS year of the runs (default: inferred from the topic ids), e.g. 2019 or progress.")
@rootpath_option()
@per_topic_option("Per-topic values too (with --format sample-eval: like sample_eval.pl -q).")
@format_option(FORMATS, help="table (rich), sample-eval (NIST's exact text, per run), json, csv, tsv (full precision).")
@click.option("--missing-as-zero", is_flag=True, help="Count qrels topics absent from a run as 0 in its means (NIST leaves them out; "
                   "sample-eval text then differs from the Perl script's).")
@click.option("--lenient", is_flag=True,
              help="Read files like sample_eval.pl does (whitespace tokens, short lines shift later records, non-numeric "
                   "scores are 0) and give zero scores instead of an error when no run topic is in the qrels.")
def score(runs, qrels, year, rootpath, per_topic, fmt, missing_as_zero, lenient) -> None:
    """Score TREC or TRECVID XML runs: infAP, infNDCG, iP@k, exactly as NIST's sample_eval.pl.

    Warnings (missing or unknown topics, duplicate shots, more than 1000 shots) go to stderr.
    """
    options = {"qrels": qrels, "year": year, "rootpath": rootpath, "missing_as_zero": missing_as_zero, "lenient": lenient}
    if len(runs) > 1 and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("scoring", total=len(runs))
            scored = score_runs(list(runs), **options, on_progress=lambda done, total: progress.update(task, completed=done))
    else:
        scored = score_runs(list(runs), **options)
    for s in scored:
        for warning in s.warnings:
            click.echo(f"avsbench: warning: {warning}", err=True)
    if fmt == "sample-eval":
        for s in scored:
            sys.stdout.write(format_sample_eval(s.result, per_topic))
    elif fmt == "json":
        click.echo(json.dumps({"runs": [s.to_dict(per_topic) for s in scored]}, indent=2))
    elif fmt in ("csv", "tsv"):
        sys.stdout.write(render_delimited(scored, per_topic, "," if fmt == "csv" else "\t"))
    else:
        from avsbench.report.tables import print_tables, score_tables

        print_tables(score_tables(scored, per_topic=per_topic, topics=all_topics() if per_topic else None))
