"""Compare runs per year and per topic, with significance and judged coverage.

Every number comes from the scorer (:func:`avsbench.eval.sample_eval.evaluate`), one call per
(run, year) with that year's own qrels, so ``compare`` and ``score`` always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from avsbench.data.collection import find_qrels
from avsbench.data.qrels import Qrels
from avsbench.data.runs import RunFile
from avsbench.data.topics import YEARS, Year, get_year, parse_years, plain_topic_id, topic_text, year_of_topic
from avsbench.errors import ConfigError, EvaluationError, UnknownIdError
from avsbench.eval.leaderboard import LeaderboardEntry, reference_entries
from avsbench.eval.sample_eval import EvalResult, evaluate
from avsbench.eval.scoring import is_synthetic_qrels, run_warnings
from avsbench.eval.significance import (
    DEFAULT_BOOTSTRAP_SAMPLES,
    DEFAULT_PERMUTATIONS,
    DEFAULT_SEED,
    bootstrap_ci,
    holm_adjust,
    randomization_test,
)

# metric name (as sample_eval prints it) -> attribute of TopicResult / EvalResult
METRICS = {"infAP": "inf_ap", "infNDCG": "inf_ndcg"}
COVERAGE_DEPTHS = (100, 1000)
# Per-topic values are printed with 4 decimals (like sample_eval); closer than this is a tie.
TIE_TOLERANCE = 5e-5
ALL_YEARS = "all"
SIGNIFICANCE_COLUMNS = ["scope", "run", "topics", "mean Δ", "ci low", "ci high", "p", "exact", "p (Holm)"]


@dataclass(frozen=True)
class Comparison:
    """Everything ``avsbench compare`` shows, as plain data frames.

    per_year: one row per run (index = run name); columns ``<year>`` (mean metric, as
        printed by ``score``), ``<year> topics``, ``mean over years``, ``topics``.
    per_topic: one row per (year, topic); columns year, topic, number, text, one column per
        run (its per-topic metric) and ``Δ <run>`` for each run other than the baseline.
    wins_ties_losses: one row per non-baseline run: wins, ties, losses against the baseline.
    significance: one row per (scope, run): topics, mean Δ, bootstrap CI, randomization p and
        its Holm adjustment over the runs compared within the same scope (a year or ``all``).
    coverage: one row per (run, year, topic): the fraction of its top 100 / 1000 shots in the
        judged pool (any judgment) and in the sampled part (judgment >= 0).
    references: published leaderboard rows per year (none for synthetic qrels).
    synthetic_years: years scored with the qrels of a generated (synthetic) collection.
    warnings: the scorer's warnings per run and year (missing topics, duplicates, > 1000 shots).
    """

    runs: list[str]
    paths: dict[str, str]
    baseline: str | None
    metric: str
    years: list[str]
    per_year: pd.DataFrame
    per_topic: pd.DataFrame
    wins_ties_losses: pd.DataFrame
    significance: pd.DataFrame
    coverage: pd.DataFrame
    references: dict[str, list[LeaderboardEntry]]
    synthetic_years: list[str]
    warnings: list[str]
    results: dict[str, dict[str, EvalResult]]
    settings: dict[str, object] = field(default_factory=dict)


class SignificanceSettings(NamedTuple):
    """How runs are tested against the baseline (see :mod:`avsbench.eval.significance`)."""

    permutations: int
    bootstrap_samples: int
    seed: int
    confidence: float


@dataclass(frozen=True)
class _LoadedRun:
    name: str
    path: str
    run: RunFile


RunInput = str | Path | RunFile


def _is_baseline(item: RunInput, baseline: RunInput) -> bool:
    if isinstance(baseline, RunFile) or isinstance(item, RunFile):
        return item is baseline or (isinstance(item, RunFile) and item.name == str(baseline))
    return Path(item).resolve() == Path(baseline).resolve() or Path(item).name == str(baseline)


def _run_names(items: Sequence[RunInput]) -> list[str]:
    """Run names (file names), made unique with their parent folders where needed."""
    plain = [item.name if isinstance(item, RunFile) else Path(item).name for item in items]
    names = [
        str(Path(Path(item).parent.name) / Path(item).name)
        if plain.count(plain[i]) > 1 and not isinstance(item, RunFile)
        else plain[i]
        for i, item in enumerate(items)
    ]
    if len(set(names)) != len(names):
        raise ConfigError("two runs to compare have the same name: " + ", ".join(names), expected="distinct runs")
    return names


def _load_runs(runs: Sequence[RunInput], baseline: RunInput | None) -> tuple[list[_LoadedRun], str | None]:
    items = list(runs)
    if not items:
        raise ConfigError("no run to compare", expected="one or more run files")
    baseline_index: int | None = None
    if baseline is not None:
        baseline_index = next((i for i, item in enumerate(items) if _is_baseline(item, baseline)), None)
        if baseline_index is None:
            items.insert(0, baseline)
            baseline_index = 0
    names = _run_names(items)
    loaded = []
    for name, item in zip(names, items):
        run = item if isinstance(item, RunFile) else RunFile.read(item)
        loaded.append(_LoadedRun(name, run.path or "", run))
    return loaded, names[baseline_index] if baseline_index is not None else None


def _years_of_run_topics(topic_ids: Sequence[str]) -> list[Year]:
    keys: set[str] = set()
    for tid in topic_ids:
        try:
            keys.add(year_of_topic(plain_topic_id(tid)).key)
        except UnknownIdError:
            continue
    return [get_year(k) for k in sorted(keys, key=lambda k: (k == "progress", k))]


def _qrels_by_year(
    runs: Sequence[_LoadedRun],
    year: str | int | Sequence[str | int] | None,
    qrels: str | Path | Qrels | None,
    rootpath: str | Path | None,
) -> dict[str, Qrels]:
    """The qrels of each year to score: ``qrels`` for one year, else each year's default qrels."""
    if qrels is not None:
        table = qrels if isinstance(qrels, Qrels) else Qrels.read(qrels)
        if year is not None:
            chosen = parse_years(str(year) if isinstance(year, (str, int)) else year)
            if len(chosen) != 1:
                raise ConfigError("one --qrels file scores one year", expected="a single --year with --qrels")
            key = chosen[0].key
        else:
            inferred = _years_of_run_topics(sorted(table.topics))
            key = inferred[0].key if len(inferred) == 1 else "qrels"
        return {key: table}
    if year is not None:
        years = parse_years(str(year) if isinstance(year, (str, int)) else year)
    else:
        years = _years_of_run_topics(sorted({t for r in runs for t in r.run.topic_ids}))
        if not years:
            raise ConfigError("cannot infer the AVS year from the runs' topic ids", expected="--year or --qrels")
    return {y.key: Qrels.read(find_qrels(y, rootpath)) for y in years}


def _coverage_fractions(ranked: Sequence[tuple[str, float]], judgments: Mapping[str, float]) -> dict[str, float | int]:
    """Fractions of the top 100 / 1000 (scorer order) in the pool and in its sampled part."""
    out: dict[str, float] = {}
    for depth in COVERAGE_DEPTHS:
        top = ranked[:depth]
        judged = [judgments[shot] for shot, _ in top if shot in judgments]
        out[f"judged@{depth}"] = len(judged) / len(top) if top else float("nan")
        out[f"sampled@{depth}"] = sum(1 for j in judged if j >= 0) / len(top) if top else float("nan")
    out["returned"] = min(len(ranked), max(COVERAGE_DEPTHS))
    return out


def _significance_rows(
    per_topic: pd.DataFrame, runs: list[str], baseline: str | None, years: list[str], tests: SignificanceSettings
) -> pd.DataFrame:
    """Each run against the baseline per year and, with several years, over all: test, CI, Holm."""
    if baseline is None:
        return pd.DataFrame(columns=SIGNIFICANCE_COLUMNS)
    rows: list[dict[str, object]] = []
    for scope in years + ([ALL_YEARS] if len(years) > 1 else []):
        frame = per_topic if scope == ALL_YEARS else per_topic[per_topic["year"] == scope]
        scope_rows: list[dict[str, object]] = []
        p_values: list[float] = []
        for name in runs:
            if name == baseline:
                continue
            paired = frame[[name, baseline]].dropna()
            if paired.empty:
                continue
            ours, base = paired[name].to_numpy(), paired[baseline].to_numpy()
            test = randomization_test(ours, base, permutations=tests.permutations, seed=tests.seed)
            ci = bootstrap_ci(
                ours, base, confidence=tests.confidence, resamples=tests.bootstrap_samples, seed=tests.seed
            )
            scope_rows.append(
                {
                    "scope": scope,
                    "run": name,
                    "topics": test.n_topics,
                    "mean Δ": test.mean_difference,
                    "ci low": ci.low,
                    "ci high": ci.high,
                    "p": test.p_value,
                    "exact": test.exact,
                }
            )
            p_values.append(test.p_value)
        for row, adjusted in zip(scope_rows, holm_adjust(p_values)):
            row["p (Holm)"] = adjusted
        rows.extend(scope_rows)
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


@dataclass
class _Scores:
    """Every (run, year) scored: the results, one row per (year, topic), coverage rows, warnings."""

    results: dict[str, dict[str, EvalResult]]
    topic_rows: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    coverage_rows: list[dict[str, object]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _score_runs_by_year(
    loaded: Sequence[_LoadedRun], qrels_of_year: Mapping[str, Qrels], metric: str, max_results: int
) -> _Scores:
    """Score each run on each year whose qrels share a topic with it (the same call as ``score``)."""
    scores = _Scores(results={r.name: {} for r in loaded})
    for year_key, table in qrels_of_year.items():
        qrels_topics = set(table.topics)
        for entry in loaded:
            if not qrels_topics & set(entry.run.topic_ids):
                continue
            result = evaluate(table, entry.run, max_results=max_results)
            scores.results[entry.name][year_key] = result
            scores.warnings.extend(f"{year_key}: {w}" for w in run_warnings(result, skip=("foreign_topics",)))
            for topic_id, topic_result in result.per_topic.items():
                row = scores.topic_rows.get((year_key, topic_id))
                if row is None:
                    row = scores.topic_rows[(year_key, topic_id)] = _topic_row(year_key, topic_id)
                row[entry.name] = float(getattr(topic_result, METRICS[metric]))
                coverage = _coverage_fractions(entry.run.topics[topic_id].ranked(), table[topic_id].judgment)
                scores.coverage_rows.append({"run": entry.name, "year": year_key, "topic": topic_id, **coverage})
    return scores


def _topic_row(year_key: str, topic_id: str) -> dict[str, object]:
    number = plain_topic_id(topic_id)
    return {"year": year_key, "topic": topic_id, "number": number, "text": topic_text(number)}


def _scored_years(qrels_of_year: Mapping[str, Qrels], scores: _Scores) -> list[str]:
    """The years (in qrels order) on which at least one run was scored."""
    years = [y for y in qrels_of_year if any(y in of_run for of_run in scores.results.values())]
    if not years:
        raise EvaluationError(
            "no run has a topic in the qrels of " + ", ".join(qrels_of_year), expected="runs and qrels of the same year"
        )
    return years


def _per_topic_frame(scores: _Scores, years: list[str], names: list[str]) -> pd.DataFrame:
    rows = sorted(scores.topic_rows.values(), key=lambda row: (years.index(str(row["year"])), int(str(row["topic"]))))
    return pd.DataFrame(rows, columns=["year", "topic", "number", "text", *names])


def _add_differences(per_topic: pd.DataFrame, names: list[str], baseline: str | None) -> pd.DataFrame:
    """Add a ``Δ <run>`` column per non-baseline run to ``per_topic``; return wins/ties/losses per run."""
    rows = []
    for name in names:
        if baseline is None or name == baseline:
            continue
        per_topic[f"Δ {name}"] = per_topic[name] - per_topic[baseline]
        deltas = per_topic[f"Δ {name}"].dropna().to_numpy()
        rows.append(
            {
                "run": name,
                "wins": int(np.count_nonzero(deltas > TIE_TOLERANCE)),
                "ties": int(np.count_nonzero(np.abs(deltas) <= TIE_TOLERANCE)),
                "losses": int(np.count_nonzero(deltas < -TIE_TOLERANCE)),
            }
        )
    return pd.DataFrame(rows, columns=["run", "wins", "ties", "losses"]).set_index("run")


def _per_year_frame(
    results: Mapping[str, Mapping[str, EvalResult]], names: list[str], years: list[str], metric: str
) -> pd.DataFrame:
    per_year = pd.DataFrame(index=pd.Index(names, name="run"))
    for year_key in years:
        of_year = [results[n].get(year_key) for n in names]
        per_year[year_key] = [np.nan if r is None else _mean_metric(r, metric) for r in of_year]
        per_year[f"{year_key} topics"] = [0 if r is None else len(r.per_topic) for r in of_year]
    per_year["mean over years"] = per_year[years].mean(axis=1, skipna=True)
    per_year["topics"] = per_year[[f"{y} topics" for y in years]].sum(axis=1)
    return per_year


def _reference_rows(
    years: list[str], synthetic_years: list[str], metric: str, references: bool
) -> dict[str, list[LeaderboardEntry]]:
    """Published leaderboard rows of each real (not synthetic) year, for infAP."""
    rows: dict[str, list[LeaderboardEntry]] = {}
    if references and metric == "infAP":
        for y in years:
            if y in YEARS and y not in synthetic_years and (entries := reference_entries(y)):
                rows[y] = entries
    return rows


def compare_runs(
    runs: Sequence[RunInput],
    baseline: RunInput | None = None,
    year: str | int | Sequence[str | int] | None = None,
    qrels: str | Path | Qrels | None = None,
    rootpath: str | Path | None = None,
    *,
    metric: str = "infAP",
    permutations: int = DEFAULT_PERMUTATIONS,
    bootstrap_samples: int = DEFAULT_BOOTSTRAP_SAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = 0.95,
    references: bool = True,
    max_results: int = 1000,
) -> Comparison:
    """Score every run on every year it covers and compare them (see :class:`Comparison`).

    ``runs`` are run files (TREC or XML) or :class:`RunFile` objects. ``baseline`` is one of
    ``runs`` (the object, its path or its name) or another run; without it, the first run is the
    reference for differences and significance when there are several runs. Years are taken from
    ``year`` or inferred from the runs' topic ids (a run may cover several years); each year is
    scored with ``qrels`` (a file or a loaded :class:`Qrels`; one year only) or the qrels that
    ``score`` uses (:func:`avsbench.data.collection.find_qrels`).
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}", expected=" or ".join(METRICS))
    loaded, baseline_name = _load_runs(runs, baseline)
    if baseline_name is None and len(loaded) > 1:
        baseline_name = loaded[0].name
    qrels_of_year = _qrels_by_year(loaded, year, qrels, rootpath)
    scores = _score_runs_by_year(loaded, qrels_of_year, metric, max_results)
    names = [r.name for r in loaded]
    years = _scored_years(qrels_of_year, scores)
    per_topic = _per_topic_frame(scores, years, names)
    wins_ties_losses = _add_differences(per_topic, names, baseline_name)
    tests = SignificanceSettings(permutations, bootstrap_samples, seed, confidence)
    significance = _significance_rows(per_topic, names, baseline_name, years, tests)
    settings = {**tests._asdict(), "max_results": max_results, "tie_tolerance": TIE_TOLERANCE}
    synthetic_years = [y for y in years if qrels_of_year[y].path and is_synthetic_qrels(str(qrels_of_year[y].path))]
    return Comparison(
        runs=names,
        paths={r.name: r.path for r in loaded},
        baseline=baseline_name,
        metric=metric,
        years=years,
        per_year=_per_year_frame(scores.results, names, years, metric),
        per_topic=per_topic,
        wins_ties_losses=wins_ties_losses,
        significance=significance,
        coverage=pd.DataFrame(scores.coverage_rows, columns=["run", "year", "topic", "returned", *_coverage_columns()]),
        references=_reference_rows(years, synthetic_years, metric, references),
        synthetic_years=synthetic_years,
        warnings=scores.warnings,
        results=scores.results,
        settings={**settings, "coverage_depths": list(COVERAGE_DEPTHS)},
    )


def _coverage_columns() -> list[str]:
    return [f"{kind}@{depth}" for depth in COVERAGE_DEPTHS for kind in ("judged", "sampled")]


def _mean_metric(result: EvalResult, metric: str) -> float:
    return float(getattr(result, METRICS[metric]))
