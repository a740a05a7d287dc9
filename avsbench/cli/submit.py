"""``avsbench submit`` (TREC run -> official TRECVID XML) and ``avsbench validate`` (DTD + NIST checks).

Neither command imports torch.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import click
import numpy as np

from avsbench.cli.options import rootpath_option
from avsbench.data.atomic import atomic_write_bytes
from avsbench.data.collection import Collection
from avsbench.data.runs import RunFile, distinct_shot_count
from avsbench.data.submission import (
    MAX_ITEMS,
    NOVELTIES,
    RUN_CLASSES,
    TASKS,
    TRAIN_TYPES,
    Problem,
    ProblemList,
    SubmissionHeader,
    check_submission,
    has_task_header,
    nist_run_name,
    submission_topics,
    submission_xml,
    validate_submission,
)
from avsbench.data.topics import get_year, plain_topic_id
from avsbench.errors import ConfigError
from avsbench.eval.scoring import rank_conflict_warning
from avsbench.ranking.output import read_provenance


def _shot_list(rootpath: str | None):
    """Collection name -> its shot list under ``rootpath`` (None when no shot list is there)."""

    def lookup(name: str):
        collection = Collection(rootpath, name)
        return collection.shots if collection.shot_list_path.is_file() else None

    return lookup if rootpath is not None else None


SHOWN_PER_KIND = 20
_VARIABLE_PART_RE = re.compile(r"'[^']*'|\"[^\"]*\"|\bshot\d\S*|\b\d+\b")  # values in a message


class ProblemKinds(ProblemList):
    """Problems grouped by kind (the check and the message with its values left out). With ``limit``, only
    the first ``limit`` of each kind (by line) are kept, and the rest counted: memory stays bounded however
    many problems a huge submission has."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit
        self.kept: dict[str, list[Problem]] = {}
        self.counts: dict[str, int] = {}

    def add(self, problems: Iterable[Problem]) -> None:
        """Take some problems, in any order."""
        for problem in problems:
            kind = f"[{problem.check}] " + _VARIABLE_PART_RE.sub("...", problem.message)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            members = self.kept.setdefault(kind, [])
            members.append(problem)
            if self.limit is not None and len(members) >= 2 * self.limit + 64:
                members.sort()
                del members[self.limit :]

    def clear(self) -> None:
        """Forget the problems taken so far."""
        self.kept.clear()
        self.counts.clear()

    def total(self) -> int:
        """How many problems were taken."""
        return sum(self.counts.values())

    def lines(self, source: str) -> list[str]:
        """Each kind's problems (the first ``limit`` of them) and how many more there are, kinds in order of
        their first line."""
        lines: list[str] = []
        groups = sorted((sorted(members)[: self.limit], kind) for kind, members in self.kept.items())
        for shown, kind in groups:
            count = self.counts[kind]
            lines.extend(f"{source}:{p.line}: [{p.check}] {p.message}" for p in shown)
            if count > len(shown):
                lines.append(
                    f"{source}: ... and {count - len(shown)} more of this kind ({count} in all): {kind} "
                    "(--all prints every one)"
                )
        return lines


def _echo_problems(source: str, problems) -> None:
    for p in problems:
        click.echo(f"{source}:{p.line}: [{p.check}] {p.message}")


def submission_pairs(run: RunFile, order: str) -> dict[str, list[tuple[str, float]]]:
    """(shot, score) pairs per topic; with ``order`` "rank", scores that give the rank column's order."""
    if order == "score":
        return {topic: list(zip(lines.shots, lines.scores)) for topic, lines in run.topics.items()}
    pairs = {}
    for topic, lines in run.topics.items():
        ranks = lines.rank_values
        if ranks is None or np.isnan(ranks).any():
            raise ConfigError(
                f"--order rank: the rank column of topic {topic} is not numeric",
                path=run.path,
                expected="numbers in the 4th column",
            )
        shots = lines.shots
        by_rank = list(dict.fromkeys(shots[i] for i in np.argsort(ranks, kind="stable").tolist()))
        pairs[topic] = [(shot, float(-position)) for position, shot in enumerate(by_rank)]
    return pairs


def submission_warnings(run: RunFile, order: str) -> list[str]:
    """Rank column contradicting the scores (score order), shots past 1000 per topic dropped."""
    warnings = []
    conflicts = run.rank_conflicts()
    if conflicts and order == "score":
        warnings.append(rank_conflict_warning(run.name, conflicts, "written") + " (--order rank writes the rank order)")
    over = {t: distinct_shot_count(run.topics[t]) for t in run.topic_ids}
    over = {t: n for t, n in over.items() if n > MAX_ITEMS}
    if over:
        dropped = ", ".join(f"{t}: {n - MAX_ITEMS} of {n}" for t, n in over.items())
        warnings.append(
            f"{run.name}: {len(over)} topic(s) list more than {MAX_ITEMS} shots; only the first {MAX_ITEMS} "
            f"in {order} order are written, the rest dropped ({dropped})"
        )
    return warnings


@click.command()
@click.argument("run_path", metavar="RUN", type=click.Path(dir_okay=False))
@click.option("--year", required=True, help="AVS year (2016..2021) or progress.")
@click.option("--pid", required=True, help="Participant (team) id.")
@click.option("--priority", required=True, type=click.IntRange(1, 10), help="Judging priority 1..10.")
@click.option(
    "--class",
    "run_class",
    required=True,
    type=click.Choice(RUN_CLASSES),
    help="F fully automatic, M manually assisted, R relevance feedback.",
)
@click.option(
    "--train-type", required=True, type=click.Choice(TRAIN_TYPES), help="Training type (see the TRECVID guidelines)."
)
@click.option("--task", type=click.Choice(TASKS), default=None, help="2019+: M main (default) or P progress.")
@click.option(
    "--novelty", type=click.Choice(NOVELTIES), default=None, help="2019+: C common run (default) or N novelty run."
)
@click.option("--desc", required=True, help="Description of the run.")
@click.option(
    "--elapsed-time",
    type=click.IntRange(min=0),
    default=None,
    help="Whole seconds per topic (default: the rank sidecar's wall time, rounded up).",
)
@click.option(
    "--out",
    "out_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Output file (default: NIST's run name next to RUN, e.g. F_M_C_D_TEAM.19_1).",
)
@click.option(
    "--order",
    type=click.Choice(["score", "rank"]),
    default="score",
    show_default=True,
    help="Order of the items: by the score column (as NIST's scorer orders a run; a warning where the rank "
    "column disagrees) or by the rank column.",
)
@rootpath_option(
    "Data root (default: ${env}): every shot must be in the collection's shot list there, where it has one."
)
def submit(
    run_path: str,
    year: str,
    pid: str,
    priority: int,
    run_class: str,
    train_type: str,
    task: str | None,
    novelty: str | None,
    desc: str,
    elapsed_time: int | None,
    out_path: str | None,
    rootpath: str | None,
    order: str = "score",
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
            raise ConfigError(
                f"no --elapsed-time and no rank provenance sidecar with the wall time for {run_path}",
                expected="--elapsed-time SECONDS",
            )
        elapsed_time = math.ceil(wall)
    run = RunFile.read(run_path)
    pairs = submission_pairs(run, order)
    for warning in submission_warnings(run, order):
        click.echo(f"avsbench: warning: {warning}", err=True)
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
    click.echo(
        f"{target}: {nist_run_name(header, dtd_year)}, {len(topics)} topics ({topics.name}), elapsedTime {elapsed_time}"
    )
    if missing:
        click.echo(
            f"warning: the run has no results for topic(s) {', '.join(map(str, missing))}: written empty", err=True
        )


@click.command()
@click.argument("xml_path", metavar="FILE.xml", type=click.Path(dir_okay=False))
@click.option("--year", default=None, help="AVS year (default: from the DOCTYPE URL).")
@rootpath_option(
    "Data root (default: ${env}): shots are checked against the collection's shot list there, where it has one."
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help=f"Print every problem (default: the first {SHOWN_PER_KIND} of each kind, with counts).",
)
def validate(xml_path: str, year: str | None, rootpath: str | None, show_all: bool = False) -> None:
    """Check a submission with our DTD and NIST's content rules; print its problems with their lines, by kind."""
    kinds = ProblemKinds(None if show_all else SHOWN_PER_KIND)
    check_submission(xml_path, kinds, year=get_year(year) if year else None, shot_ids=_shot_list(rootpath))
    if kinds.counts:
        for line in kinds.lines(xml_path):
            click.echo(line)
        click.echo(f"{xml_path}: {kinds.total()} problem(s) of {len(kinds.counts)} kind(s)", err=True)
        sys.exit(1)
    click.echo(f"{xml_path}: valid")
