"""Score run files (TREC or TRECVID XML) the way ``avsbench score`` does, as a library call.

:func:`score_runs` reads each run, picks its year (``year`` or inferred from its topic ids),
finds the qrels (``qrels``, else :func:`avsbench.data.collection.find_qrels`: the file installed at
``<root>/<collection>/TextData/avs.qrels.tvNN``, else the bundled 2021 qrels), scores it with
:func:`avsbench.eval.sample_eval.evaluate` and collects the warnings a user should see
(topics missing from the run or absent from the qrels, duplicate shots, more than 1000 shots).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from avsbench.data.qrels import Qrels
from avsbench.data.root import SYNTHETIC_MARKER
from avsbench.data.runs import RunFile
from avsbench.errors import AvsbenchError, ConfigError
from avsbench.eval.sample_eval import DEFAULT_CUTOFFS, DEFAULT_MAX_RESULTS, EvalResult, evaluate
from avsbench.eval.workers import map_in_workers

if TYPE_CHECKING:
    from pathlib import Path

    from avsbench.data.topics import Year


@dataclass(frozen=True)
class ScoredRun:
    """One run scored against one qrels file."""

    name: str
    path: str | None
    year: Year | None  # None: --qrels given and the topic ids belong to no known year
    qrels_path: str
    synthetic_qrels: bool  # judgments of a generated (demo) collection, not NIST's
    result: EvalResult
    warnings: tuple[str, ...]

    def to_dict(self, per_topic: bool = True) -> dict:
        """JSON-ready dict: run, year, qrels, warnings and the full-precision result."""
        return {
            **self.result.to_dict(per_topic),
            "run": self.name,
            "year": self.year.key if self.year else None,
            "qrels": self.qrels_path,
            "synthetic_qrels": self.synthetic_qrels,
            "warnings": list(self.warnings),
        }


def is_synthetic_qrels(path: str | Path) -> bool:
    """True when a qrels file belongs to a generated collection (``SYNTHETIC.md`` in the
    collection folder or the root above it): its scores are not comparable to published ones."""
    if not os.path.isfile(path):
        return False
    collection = os.path.dirname(os.path.dirname(os.path.realpath(path)))
    return any(
        os.path.isfile(os.path.join(folder, SYNTHETIC_MARKER)) for folder in (collection, os.path.dirname(collection))
    )


PARALLEL_QRELS_BYTES = 32 << 20  # runs at least this large are read while another process parses cold qrels


def _run_bytes(runs: Sequence[str | Path | RunFile]) -> int:
    total = 0
    for item in runs:
        if not isinstance(item, RunFile) and os.path.isfile(item):
            total += os.path.getsize(item)
    return total


def _listing(topics: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(topics[:limit])
    return shown + (f", ... ({len(topics)} in all)" if len(topics) > limit else "")


# what each warning of :func:`run_warnings` is about; callers filter by these, never by text
WARNING_CATEGORIES = (
    "no_scored_topics",
    "missing_topics",
    "foreign_topics",
    "duplicate_lines",
    "rank_conflicts",
    "over_limit",
)


def rank_conflict_warning(name: str, conflicts: dict[str, str], action: str) -> str:
    """One warning for the topics whose score column contradicts the rank column."""
    topics = [f"{t}: {why}" for t, why in conflicts.items()]
    return (
        f"{name}: the score column contradicts the rank column in {len(topics)} topic(s) ({_listing(topics, 4)}): "
        f"{action} in score order (score descending, ties by shot id descending), "
        "as sample_eval.pl does, not in rank order"
    )


def run_warnings(result: EvalResult, *, skip: Iterable[str] = ()) -> list[str]:
    """What a user should know about a scored run, one sentence each (empty for a clean run).

    ``skip`` leaves out the warnings of those categories (names in :data:`WARNING_CATEGORIES`).
    """
    skipped = set(skip)
    unknown = skipped - set(WARNING_CATEGORIES)
    if unknown:
        raise ValueError(f"unknown warning categories {sorted(unknown)}; known: {', '.join(WARNING_CATEGORIES)}")
    return [text for category, text in _categorized_warnings(result) if category not in skipped]


def _categorized_warnings(result: EvalResult) -> Iterator[tuple[str, str]]:
    name = result.run_name
    if result.num_topics == 0:
        yield (
            "no_scored_topics",
            (
                f"{name}: no topic of the run is in the qrels; all scores are 0 "
                "(sample_eval.pl dies dividing by zero here)"
            ),
        )
    if result.missing_topics:
        rule = (
            "counted as 0 in the means (--missing-as-zero)"
            if result.missing_as_zero
            else "left out of the means, as sample_eval.pl does (--missing-as-zero counts them as 0)"
        )
        missing = result.missing_topics
        listing = _listing(missing)
        yield "missing_topics", f"{name}: {len(missing)} qrels topic(s) missing from the run ({listing}): {rule}"
    if result.foreign_topics:
        foreign = result.foreign_topics
        yield "foreign_topics", f"{name}: {len(foreign)} run topic(s) not in the qrels ({_listing(foreign)}): ignored"
    if result.duplicate_lines:
        total = sum(result.duplicate_lines.values())
        topics = [f"{t}: {n}" for t, n in result.duplicate_lines.items()]
        yield (
            "duplicate_lines",
            (
                f"{name}: {total} duplicate shot line(s) ({_listing(topics)}): the later line's score wins; "
                "per-topic num_ret counts every line"
            ),
        )
    if result.rank_conflicts:
        yield "rank_conflicts", rank_conflict_warning(name, result.rank_conflicts, "scored")
    if result.over_limit_topics:
        topics = [f"{t}: {n}" for t, n in result.over_limit_topics.items()]
        yield (
            "over_limit",
            (
                f"{name}: {len(topics)} topic(s) with more than {result.max_results} distinct shots "
                f"({_listing(topics)}): "
                f"only the {result.max_results} best-scored count"
            ),
        )


def score_runs(
    runs: Sequence[str | Path | RunFile],
    *,
    qrels: str | Path | Qrels | None = None,
    year: str | int | None = None,
    rootpath: str | Path | None = None,
    missing_as_zero: bool = False,
    lenient: bool = False,
    max_results: int = DEFAULT_MAX_RESULTS,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    on_progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> list[ScoredRun]:
    """Score every run (paths or :class:`RunFile`); an XML file may hold several runs.

    ``qrels`` scores all runs against one file; otherwise each run's year (``year``, or inferred
    from its topic ids) selects the qrels via :func:`find_qrels`. Each qrels file is read once.
    ``lenient`` reads files and handles a run without qrels topics like sample_eval.pl (silently);
    bad input otherwise raises an :class:`avsbench.errors.AvsbenchError` naming file and line.
    Run files are read keeping only the lines that can be among each topic's ``max_results`` best
    (bounded memory for huge runs). ``on_progress(done, total)`` is called after each run file.
    ``jobs`` > 1 scores the files in that many processes (forks sharing the loaded qrels; see
    :mod:`avsbench.eval.workers`), results and errors as in one process.
    """
    if not runs:
        raise ConfigError("no run to score", expected="one or more run files")
    from avsbench.data.topics import get_year

    warming = None
    if jobs == 1 and isinstance(qrels, str | os.PathLike) and _run_bytes(runs) >= PARALLEL_QRELS_BYTES:
        from avsbench.data.qrels_cache import build_in_background

        warming = build_in_background(qrels, lenient=lenient)  # cold qrels parsed while the first run is read
    source = _QrelsSource(qrels, get_year(year) if year is not None else None, rootpath, lenient, warming)
    settings = {"max_results": max_results, "cutoffs": cutoffs, "missing_as_zero": missing_as_zero, "lenient": lenient}
    done = 0

    def advance(count: int) -> None:
        nonlocal done
        for _ in range(count):
            done += 1
            if on_progress is not None:
                on_progress(done, len(runs))

    def score_file(item: str | Path | RunFile) -> list[ScoredRun]:
        try:
            file_runs = (
                [item] if isinstance(item, RunFile) else RunFile.read_all(item, lenient=lenient, keep_best=max_results)
            )
        except AvsbenchError:
            source.qrels_given()  # an error in the qrels comes first, as when they are read before the runs
            raise
        return [_score_run(run, source, settings) for run in file_runs]

    per_file = map_in_workers(score_file, runs, jobs, advance)
    return [scored for file_scores in per_file for scored in file_scores]


class _QrelsSource:
    """The qrels for each run: the given ones, else the year's (each file read once)."""

    def __init__(
        self,
        qrels: str | Path | Qrels | None,
        year: Year | None,
        rootpath: str | Path | None,
        lenient: bool,
        warming: Callable[[], Qrels] | None = None,
    ) -> None:
        """``warming``: the qrels file is being parsed into the cache by another process; this waits for it and
        gives the qrels (called when they are first needed); without it they are read now."""
        self.year = year
        self.rootpath = rootpath
        self.lenient = lenient
        self._path = qrels if qrels is not None and not isinstance(qrels, Qrels) else None
        self._given = qrels if isinstance(qrels, Qrels) else None
        self._warming = warming
        if warming is None:
            self.qrels_given()
        self.loaded: dict[Path, Qrels] = {}
        self.synthetic: dict[str, bool] = {}  # qrels path -> is_synthetic_qrels (checked once per file)

    def qrels_given(self) -> Qrels | None:
        """The qrels given to score every run against (read on first use when warming), else None."""
        if self._given is None and self._path is not None:
            if self._warming is not None:
                self._given, self._warming = self._warming(), None
            else:
                self._given = Qrels.read(self._path, lenient=self.lenient)
        return self._given

    def year_of(self, run: RunFile) -> Year | None:
        """The run's year: the one given, else inferred from its topic ids (None if unknown and qrels given)."""
        if self.year is not None:
            return self.year
        try:
            from avsbench.data.topics import infer_year

            return infer_year(run.topic_ids)
        except ConfigError:
            if self.qrels_given() is None:
                raise ConfigError(
                    f"cannot infer the AVS year of run {run.name} from its topic ids "
                    f"({_listing(run.topic_ids, 5) or 'none'})",
                    path=run.path,
                    expected='qrels-style topic ids ("1" + topic number, e.g. 1611), or --year / --qrels',
                ) from None
            return None

    def is_synthetic(self, table: Qrels) -> bool:
        """Whether the qrels belong to a generated collection (see :func:`is_synthetic_qrels`)."""
        if table.path is None:
            return False
        if table.path not in self.synthetic:
            self.synthetic[table.path] = is_synthetic_qrels(table.path)
        return self.synthetic[table.path]

    def qrels_for(self, year: Year | None) -> Qrels:
        given = self.qrels_given()
        if given is not None:
            return given
        assert year is not None
        from avsbench.data.collection import find_qrels

        path = find_qrels(year, self.rootpath)
        if path not in self.loaded:
            self.loaded[path] = Qrels.read(path, lenient=self.lenient)
        return self.loaded[path]


def _score_run(run: RunFile, source: _QrelsSource, settings: dict) -> ScoredRun:
    run_year = source.year_of(run)
    table = source.qrels_for(run_year)
    result = evaluate(table, run, **settings)
    return ScoredRun(
        name=run.name,
        path=run.path,
        year=run_year,
        qrels_path=table.path or "<qrels>",
        synthetic_qrels=source.is_synthetic(table),
        result=result,
        warnings=tuple(run_warnings(result)),
    )
