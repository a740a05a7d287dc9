"""Score run files (TREC or TRECVID XML) the way ``avsbench score`` does, as a library call.

:func:`score_runs` reads each run, picks its year (``year`` or inferred from its topic ids),
finds the qrels (``qrels``, else ``<root>/<collection>/TextData/avs.qrels.tvNN``, else the
qrels bundled with the package, only 2021 ships), scores it with
:func:`avsbench.eval.sample_eval.evaluate` and collects the warnings a user should see
(topics missing from the run or absent from the qrels, duplicate shots, more than 1000 shots).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from avsbench.data.collection import SYNTHETIC_MARKER, Collection
from avsbench.data.qrels import Qrels
from avsbench.data.resources import bundled_qrels
from avsbench.data.root import ROOT_ENV, resolve_root
from avsbench.data.runs import RunFile
from avsbench.data.topics import Year, get_year, infer_year
from avsbench.errors import ConfigError, MissingDataError
from avsbench.eval.sample_eval import DEFAULT_CUTOFFS, DEFAULT_MAX_RESULTS, EvalResult, evaluate


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


def find_qrels(year: Year, rootpath: str | Path | None = None) -> Path:
    """The qrels of ``year``: ``<root>/<collection>/TextData/<qrels name>``, else the bundled file.

    A generated (synthetic) collection never falls back to NIST's bundled judgments.
    """
    root = resolve_root(rootpath)
    if (root / year.collection).is_dir():
        path = Collection(root, year.collection).qrels_path(year)
    else:
        path = bundled_qrels(year.edition)
    if path is None:
        target = root / year.collection / "TextData" / year.qrels_name
        raise MissingDataError(
            f"no qrels for {year.key}: put NIST's {year.qrels_name} at {target} "
            f"(data root from --rootpath, ${ROOT_ENV} or ~/VisualSearch) or pass --qrels FILE; only the 2021 qrels ship with avsbench"
        )
    return path


def _is_synthetic(qrels_path: Path) -> bool:
    text_dir = qrels_path.resolve().parent
    return any((folder / SYNTHETIC_MARKER).is_file() for folder in (text_dir.parent, text_dir.parent.parent))


def _listing(topics: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(topics[:limit])
    return shown + (f", ... ({len(topics)} in all)" if len(topics) > limit else "")


def run_warnings(result: EvalResult) -> list[str]:
    """What a user should know about a scored run, one sentence each (empty for a clean run)."""
    name = result.run_name
    out: list[str] = []
    if result.num_topics == 0:
        out.append(f"{name}: no topic of the run is in the qrels; all scores are 0 (sample_eval.pl dies dividing by zero here)")
    if result.missing_topics:
        rule = (
            "counted as 0 in the means (--missing-as-zero)"
            if result.missing_as_zero
            else "left out of the means, as sample_eval.pl does (--missing-as-zero counts them as 0)"
        )
        out.append(f"{name}: {len(result.missing_topics)} qrels topic(s) missing from the run ({_listing(result.missing_topics)}): {rule}")
    if result.foreign_topics:
        out.append(f"{name}: {len(result.foreign_topics)} run topic(s) not in the qrels ({_listing(result.foreign_topics)}): ignored")
    if result.duplicate_lines:
        total = sum(result.duplicate_lines.values())
        topics = [f"{t}: {n}" for t, n in result.duplicate_lines.items()]
        out.append(
            f"{name}: {total} duplicate shot line(s) ({_listing(topics)}): the later line's score wins; per-topic num_ret counts every line"
        )
    if result.over_limit_topics:
        topics = [f"{t}: {n}" for t, n in result.over_limit_topics.items()]
        out.append(
            f"{name}: {len(topics)} topic(s) with more than {result.max_results} distinct shots ({_listing(topics)}): "
            f"only the {result.max_results} best-scored count"
        )
    return out


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
) -> list[ScoredRun]:
    """Score every run (paths or :class:`RunFile`); an XML file may hold several runs.

    ``qrels`` scores all runs against one file; otherwise each run's year (``year``, or inferred
    from its topic ids) selects the qrels via :func:`find_qrels`. Each qrels file is read once.
    ``lenient`` reads files and handles a run without qrels topics like sample_eval.pl (silently);
    bad input otherwise raises an :class:`avsbench.errors.AvsbenchError` naming file and line.
    ``on_progress(done, total)`` is called after each run file is scored.
    """
    if not runs:
        raise ConfigError("no run to score", expected="one or more run files")
    fixed_year = get_year(year) if year is not None else None
    given_qrels: Qrels | None = None
    if isinstance(qrels, Qrels):
        given_qrels = qrels
    elif qrels is not None:
        given_qrels = Qrels.read(qrels, lenient=lenient)
    loaded: dict[Path, Qrels] = {}

    def score_file(item: str | Path | RunFile) -> list[ScoredRun]:
        return [score_run(run) for run in ([item] if isinstance(item, RunFile) else RunFile.read_all(item, lenient=lenient))]

    def score_run(run: RunFile) -> ScoredRun:
        run_year = fixed_year
        if run_year is None:
            try:
                run_year = infer_year(run.topic_ids)
            except ConfigError:
                if given_qrels is None:
                    raise ConfigError(
                        f"cannot infer the AVS year of run {run.name} from its topic ids ({_listing(run.topic_ids, 5) or 'none'})",
                        path=run.path,
                        expected='qrels-style topic ids ("1" + topic number, e.g. 1611), or --year / --qrels',
                    ) from None
        if given_qrels is not None:
            table = given_qrels
        else:
            path = find_qrels(run_year, rootpath)
            if path not in loaded:
                loaded[path] = Qrels.read(path, lenient=lenient)
            table = loaded[path]
        result = evaluate(table, run, max_results=max_results, cutoffs=cutoffs, missing_as_zero=missing_as_zero, lenient=lenient)
        return ScoredRun(
            name=run.name,
            path=run.path,
            year=run_year,
            qrels_path=table.path or "<qrels>",
            synthetic_qrels=table.path is not None and _is_synthetic(Path(table.path)),
            result=result,
            warnings=tuple(run_warnings(result)),
        )

    scored: list[ScoredRun] = []
    for done, item in enumerate(runs, 1):
        scored.extend(score_file(item))
        if on_progress is not None:
            on_progress(done, len(runs))
    return scored
