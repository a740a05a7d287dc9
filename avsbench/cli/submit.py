"""``avsbench submit`` (TREC run -> official TRECVID XML) and ``avsbench validate`` (DTD + NIST checks).

Neither command imports torch.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

from avsbench.cli.options import rootpath_option
from avsbench.data.collection import Collection
from avsbench.data.runs import RunFile
from avsbench.data.submission import (
    NOVELTIES,
    RUN_CLASSES,
    TASKS,
    TRAIN_TYPES,
    SubmissionHeader,
    has_task_header,
    nist_run_name,
    submission_topics,
    submission_xml,
    validate_submission,
)
from avsbench.data.atomic import atomic_write_bytes
from avsbench.data.topics import get_year, plain_topic_id
from avsbench.errors import ConfigError
from avsbench.ranking.output import read_provenance


def _shot_list(rootpath: str | None):
    """Collection name -> its shot list under ``rootpath`` (None when no shot list is there)."""

    def lookup(name: str):
        collection = Collection(rootpath, name)
        return collection.shots if collection.shot_list_path.is_file() else None

    return lookup if rootpath is not None else None


def _echo_problems(source: str, problems) -> None:
    for p in problems:
        click.echo(f"{source}:{p.line}: [{p.check}] {p.message}")


@click.command()
@click.argument("run_path", metavar="RUN", type=click.Path(dir_okay=False))
@click.option("--year", required=True, help="AVS year (2016..2021) or progress.")
@click.option("--pid", required=True, help="Participant (team) id.")
@click.option("--priority", required=True, type=click.IntRange(1, 10), help="Judging priority 1..10.")
@click.option("--class", "run_class", required=True, type=click.Choice(RUN_CLASSES), help="F fully automatic, M manually assisted, R relevance feedback.")
@click.option("--train-type", required=True, type=click.Choice(TRAIN_TYPES), help="Training type (see the TRECVID guidelines).")
@click.option("--task", type=click.Choice(TASKS), default=None, help="2019+: M main (default) or P progress.")
@click.option("--novelty", type=click.Choice(NOVELTIES), default=None, help="2019+: C common run (default) or N novelty run.")
@click.option("--desc", required=True, help="Description of the run.")
@click.option("--elapsed-time", type=click.IntRange(min=0), default=None, help="Whole seconds per topic (default: the rank sidecar's wall time, rounded up).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Output file (default: NIST's run name next to RUN, e.g. F_M_C_D_TEAM.19_1).")
@rootpath_option("Data root (default: ${env}): every shot must be in the collection's shot list there, where it has one.")
def submit(
    run_path: str, year: str, pid: str, priority: int, run_class: str, train_type: str, task: str | None, novelty: str | None,
    desc: str, elapsed_time: int | None, out_path: str | None, rootpath: str | None,
) -> None:
    """Write the official videoAdhocSearchResults XML of a run (checked before it is written)."""
    evaluation = get_year(year)
    dtd_year = evaluation.xml_dtd_year
    if has_task_header(dtd_year):
        task = task or ("P" if evaluation.key == "progress" else "M")
        novelty = novelty or "C"
    header = SubmissionHeader(pid, priority, run_class, train_type, desc, task=task, novelty=novelty)
    header.check(dtd_year)
    if elapsed_time is None:
        record = read_provenance(run_path) or {}
        wall = record.get("wall_time_s")
        if not isinstance(wall, (int, float)):
            raise ConfigError(f"no --elapsed-time and no rank provenance sidecar with the wall time for {run_path}", expected="--elapsed-time SECONDS")
        elapsed_time = math.ceil(wall)
    run = RunFile.read(run_path)
    pairs = {topic: list(zip(lines.shots, lines.scores)) for topic, lines in run.topics.items()}
    data = submission_xml(pairs, evaluation, header, elapsed_time)
    problems = validate_submission(data, year=evaluation, shot_ids=_shot_list(rootpath))
    target = Path(out_path) if out_path else Path(run_path).parent / nist_run_name(header, dtd_year)
    if problems:
        _echo_problems(str(target), problems)
        click.echo(f"avsbench: error: {len(problems)} problem(s); nothing written", err=True)
        sys.exit(1)
    atomic_write_bytes(target, data)
    topics = submission_topics(evaluation, header.task)
    present = {plain_topic_id(t) for t in run.topic_ids}
    missing = [n for n in topics.numbers if n not in present]
    click.echo(f"{target}: {nist_run_name(header, dtd_year)}, {len(topics)} topics ({topics.name}), elapsedTime {elapsed_time}")
    if missing:
        click.echo(f"warning: the run has no results for topic(s) {', '.join(map(str, missing))}: written empty", err=True)


@click.command()
@click.argument("xml_path", metavar="FILE.xml", type=click.Path(dir_okay=False))
@click.option("--year", default=None, help="AVS year (default: from the DOCTYPE URL).")
@rootpath_option("Data root (default: ${env}): shots are checked against the collection's shot list there, where it has one.")
def validate(xml_path: str, year: str | None, rootpath: str | None) -> None:
    """Check a submission with our DTD and NIST's content rules; print every problem with its line."""
    problems = validate_submission(xml_path, year=get_year(year) if year else None, shot_ids=_shot_list(rootpath))
    if problems:
        _echo_problems(xml_path, problems)
        click.echo(f"{xml_path}: {len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{xml_path}: valid")
