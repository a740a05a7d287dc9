"""The Python API behind ``import avsbench as avs``: the same calls the command line makes.

Scoring, comparison and fusion import no torch; :func:`load_model` and :func:`rank` need the
``model`` extra (``pip install 'avsbench[model]'``) and import it only when called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from avsbench import interop
from avsbench.data.qrels import Qrels
from avsbench.data.runs import RunFile
from avsbench.data.topics import TopicSet, get_year
from avsbench.errors import ConfigError
from avsbench.eval.compare import Comparison, compare_runs
from avsbench.eval.fusion import fuse as fuse_runs
from avsbench.eval.sample_eval import DEFAULT_CUTOFFS, DEFAULT_MAX_RESULTS, EvalResult
from avsbench.eval.scoring import ScoredRun
from avsbench.eval.scoring import score_runs as score_run_files
from avsbench.extras import require_extra

if TYPE_CHECKING:
    from avsbench.model.checkpoint import LoadedModel
    from avsbench.ranking.pipeline import RankReport

# A run: a file, a RunFile, a frame (topic, shot, score), {topic: {shot: score}} or ScoredDoc-style tuples.
RunLike = str | Path | RunFile | Mapping[str, Mapping[str, float]] | Iterable[Any]
# Qrels: a file, Qrels, a frame (topic, shot[, stratum], judgment), (topic, shot, stratum, judgment)
# records or ir_measures-style Qrel(query_id, doc_id, relevance) tuples.
QrelsLike = str | Path | Qrels | Iterable[Any]


def as_run(run: RunLike | pd.DataFrame, name: str | None = None) -> RunFile | str | Path:
    """``run`` as something :func:`score_runs` reads: files stay paths, the other forms become RunFiles."""
    if isinstance(run, (str, Path, RunFile)):
        return run
    if isinstance(run, Mapping):
        return RunFile.from_dict(run, name=name or "run")
    if isinstance(run, pd.DataFrame):
        return RunFile.from_dataframe(run, name=name or "run")
    if isinstance(run, Iterable) and not isinstance(run, bytes):
        return interop.run_from_scored_docs(run, name=name or "run")
    raise ConfigError(
        f"cannot read a run from {type(run).__name__}",
        expected="a file path, a RunFile, a DataFrame (topic, shot, score), {topic: {shot: score}} or ScoredDoc tuples",
    )


def as_qrels(qrels: QrelsLike | pd.DataFrame | None) -> Qrels | str | Path | None:
    """``qrels`` as something :func:`score_runs` reads: files stay paths, the other forms become Qrels."""
    if qrels is None or isinstance(qrels, (str, Path, Qrels)):
        return qrels
    if isinstance(qrels, pd.DataFrame):
        return interop.qrels_from_dataframe(qrels)
    if isinstance(qrels, Iterable) and not isinstance(qrels, bytes):
        records = list(qrels)
        if records and (hasattr(records[0], "query_id") or len(records[0]) == 3):
            return interop.qrels_from_ir_measures(records)
        return Qrels.from_records(records)
    raise ConfigError(
        f"cannot read qrels from {type(qrels).__name__}",
        expected="a file path, Qrels, a DataFrame, (topic, shot, stratum, judgment) records or Qrel tuples",
    )


def score_runs(
    runs: Sequence[RunLike | pd.DataFrame],
    qrels: QrelsLike | None = None,
    *,
    year: str | int | None = None,
    rootpath: str | Path | None = None,
    missing_as_zero: bool = False,
    max_results: int = DEFAULT_MAX_RESULTS,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
) -> list[ScoredRun]:
    """Score several runs exactly as ``avsbench score`` does; one :class:`ScoredRun` per run.

    Without ``qrels``, each run's year (``year`` or inferred from its topic ids) picks the qrels
    (the data root's, else the bundled 2021 file). ``missing_as_zero`` counts qrels topics absent
    from a run as 0 (ir_measures' rule) instead of leaving them out (NIST's rule).

    >>> import avsbench as avs
    >>> scored = avs.score_runs(["runs/a.tv21.txt", "runs/b.tv21.txt"])  # doctest: +SKIP
    >>> [(s.name, round(s.result.inf_ap, 4)) for s in scored]  # doctest: +SKIP
    """
    items = [as_run(run, name=f"run{i + 1}") for i, run in enumerate(runs)]
    return score_run_files(
        items,
        qrels=as_qrels(qrels),
        year=year,
        rootpath=rootpath,
        missing_as_zero=missing_as_zero,
        max_results=max_results,
        cutoffs=cutoffs,
    )


def evaluate(
    run: RunLike | pd.DataFrame,
    qrels: QrelsLike | None = None,
    *,
    year: str | int | None = None,
    rootpath: str | Path | None = None,
    missing_as_zero: bool = False,
    max_results: int = DEFAULT_MAX_RESULTS,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
) -> EvalResult:
    """Score one run (sample_eval.pl's numbers); ``.to_dataframe()`` gives it per topic x measure.

    >>> import avsbench as avs
    >>> result = avs.evaluate("runs/laff.tv21.txt")  # doctest: +SKIP
    >>> result.inf_ap, result.to_dataframe("wide")["infAP"]  # doctest: +SKIP
    """
    scored = score_runs(
        [run],
        qrels,
        year=year,
        rootpath=rootpath,
        missing_as_zero=missing_as_zero,
        max_results=max_results,
        cutoffs=cutoffs,
    )
    if len(scored) != 1:
        raise ConfigError(f"the file holds {len(scored)} runs", expected="one run; use avsbench.score_runs")
    return scored[0].result


def compare(
    runs: Sequence[RunLike | pd.DataFrame],
    baseline: RunLike | None = None,
    *,
    year: str | int | Sequence[str | int] | None = None,
    qrels: QrelsLike | None = None,
    rootpath: str | Path | None = None,
    metric: str = "infAP",
    confidence: float = 0.95,
    seed: int = 0,
    **options: Any,
) -> Comparison:
    """Compare runs per year and per topic, with significance against the baseline (the first run by default).

    Further ``options`` (``permutations``, ``bootstrap_samples``, ``references``, ``max_results``)
    go to :func:`avsbench.eval.compare.compare_runs`.

    >>> import avsbench as avs
    >>> cmp = avs.compare(["runs/a.tv21.txt", "runs/b.tv21.txt"])  # doctest: +SKIP
    >>> cmp.per_year, cmp.significance  # doctest: +SKIP
    """
    items = [as_run(run, name=f"run{i + 1}") for i, run in enumerate(runs)]
    base = None if baseline is None else as_run(baseline, name="baseline")
    return compare_runs(
        items, base, year, as_qrels(qrels), rootpath, metric=metric, confidence=confidence, seed=seed, **options
    )


def fuse(runs: Sequence[RunLike | pd.DataFrame], *, method: str = "rrf", **options: Any) -> RunFile:
    """Fuse runs (``rrf``, ``combsum`` or ``combmnz``; ``norm``, ``weights``, ``k``, ``depth``, ``tag``).

    >>> import avsbench as avs
    >>> fused = avs.fuse(["runs/a.tv21.txt", "runs/b.tv21.txt"], method="rrf")  # doctest: +SKIP
    >>> fused.write("runs/fused.tv21.txt")  # doctest: +SKIP
    """
    loaded = []
    for i, run in enumerate(runs):
        item = as_run(run, name=f"run{i + 1}")
        loaded.append(item if isinstance(item, RunFile) else RunFile.read(item))
    return fuse_runs(loaded, method=method, **options)


def topics(year: str | int) -> TopicSet:
    """The bundled topics of an AVS year (2016..2021, or ``"progress"``).

    >>> import avsbench as avs
    >>> [(t.number, t.text) for t in avs.topics(2021)][:1]  # doctest: +SKIP
    """
    return get_year(year).topics()


def load_model(model_dir: str | Path, device: str = "cpu", **options: Any) -> LoadedModel:
    """Load a LAFF model folder (needs ``pip install 'avsbench[model]'``).

    >>> import avsbench as avs
    >>> loaded = avs.load_model("models/laff")  # doctest: +SKIP
    """
    require_extra("model")
    from avsbench.model.checkpoint import load_model as load_checkpoint

    return load_checkpoint(model_dir, device, **options)


def rank(
    model_dir: str | Path,
    year: str | int | Sequence[str | int],
    *,
    rootpath: str | Path | None = None,
    out_dir: str | Path = "runs",
    **settings: Any,
) -> RankReport:
    """Rank every shot of the years' collections for their topics; writes one run per year.

    ``settings`` are :class:`avsbench.ranking.engine.RankSettings` fields (``top_k``,
    ``precision``, ``device``...). Needs ``pip install 'avsbench[model]'``.

    >>> import avsbench as avs
    >>> report = avs.rank("models/laff", 2021, rootpath="~/VisualSearch")  # doctest: +SKIP
    >>> [run.run_path for run in report.runs]  # doctest: +SKIP
    """
    require_extra("model")
    from avsbench.data.topics import parse_years
    from avsbench.ranking.engine import RankSettings
    from avsbench.ranking.pipeline import rank_years

    years = parse_years([year] if isinstance(year, int) else year)
    return rank_years(years, model_dir, settings=RankSettings(**settings), rootpath=rootpath, out_dir=out_dir)
