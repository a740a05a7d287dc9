"""Late fusion of runs: reciprocal rank fusion, CombSUM and CombMNZ.

Every input run is read in the scorer's order (a repeated shot keeps its later score; score
descending, then shot id descending) and cut at ``depth``. The fused list is ordered the
same way and cut at 1000 shots; its score column holds the fused values (10 decimals, ties
kept strictly decreasing by 1e-10 steps, as ``rank`` writes them), so any TREC tool
(sample_eval included) reads back exactly this order. The tag is cleaned like ``rank``'s run
ids, and the output file may not be one of the inputs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from avsbench.data.runs import RunFile, ranked_shots, safe_run_id, strictly_decreasing_scores
from avsbench.data.textrecords import topic_sort_key
from avsbench.errors import ConfigError

METHODS = ("rrf", "combsum", "combmnz")
NORMS = ("minmax", "zscore", "rank")
MAX_RESULTS = 1000


def normalise(scores: np.ndarray, norm: str) -> np.ndarray:
    """Normalise one ranked list's scores (given in rank order)."""
    if scores.size == 0:
        return scores
    if norm == "minmax":
        low, high = float(scores.min()), float(scores.max())
        return np.ones_like(scores) if high == low else (scores - low) / (high - low)
    if norm == "zscore":
        spread = float(scores.std())
        return np.zeros_like(scores) if spread == 0.0 else (scores - float(scores.mean())) / spread
    if norm == "rank":
        n = scores.size
        return (n - np.arange(n, dtype=np.float64)) / n
    raise ConfigError(f"unknown normalisation {norm!r}", expected=" or ".join(NORMS))


def _check_options(
    n_runs: int, method: str, norm: str | None, weights: Sequence[float] | None, k: float, depth: int
) -> list[float]:
    if method not in METHODS:
        raise ConfigError(f"unknown fusion method {method!r}", expected=" or ".join(METHODS))
    if method == "rrf" and norm is not None:
        raise ConfigError(
            "rrf fuses ranks; a score normalisation does not apply", expected="--norm only with combsum or combmnz"
        )
    if norm is not None and norm not in NORMS:
        raise ConfigError(f"unknown normalisation {norm!r}", expected=" or ".join(NORMS))
    if n_runs < 1:
        raise ConfigError("nothing to fuse", expected="at least one run")
    if not (isinstance(depth, int) and depth >= 1):
        raise ConfigError(f"depth must be a positive integer, got {depth!r}")
    if not (math.isfinite(k) and k >= 0):
        raise ConfigError(f"rrf k must be a finite number >= 0, got {k!r}")
    if weights is None:
        return [1.0] * n_runs
    weights = [float(w) for w in weights]
    if len(weights) != n_runs:
        raise ConfigError(f"{len(weights)} weights for {n_runs} runs", expected="one weight per run")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ConfigError(f"bad weights {weights}", expected="finite weights >= 0, at least one > 0")
    return weights


def fused_scores(
    runs: Sequence[RunFile],
    *,
    method: str = "rrf",
    norm: str | None = None,
    weights: Sequence[float] | None = None,
    k: float = 60.0,
    depth: int = 1000,
) -> dict[str, list[tuple[str, float]]]:
    """Fuse runs per topic; returns topic id -> [(shot, fused score)] in the scorer's order
    (fused score descending, then shot id descending), at most 1000 shots per topic.

    rrf: sum of w / (k + rank). combsum: sum of w * normalised score (``norm`` defaults to
    minmax). combmnz: combsum times the number of runs (with weight > 0) that retrieved the
    shot. A shot absent from a run's top ``depth`` gets nothing from that run.
    """
    weights = _check_options(len(runs), method, norm, weights, k, depth)
    norm = norm or "minmax"
    topics = sorted({t for run in runs for t in run.topic_ids}, key=topic_sort_key)
    fused: dict[str, list[tuple[str, float]]] = {}
    for topic in topics:
        totals: dict[str, float] = {}
        hits: dict[str, int] = {}
        for run, weight in zip(runs, weights):
            if topic not in run.topics or weight == 0:
                continue
            ranked = run.topics[topic].ranked()[:depth]
            if method == "rrf":
                contributions = weight / (k + np.arange(1, len(ranked) + 1, dtype=np.float64))
            else:
                contributions = weight * normalise(np.array([score for _, score in ranked], dtype=np.float64), norm)
            for (shot, _), value in zip(ranked, contributions.tolist()):
                totals[shot] = totals.get(shot, 0.0) + value
                hits[shot] = hits.get(shot, 0) + 1
        if method == "combmnz":
            totals = {shot: value * hits[shot] for shot, value in totals.items()}
        fused[topic] = ranked_shots(list(totals), list(totals.values()))[:MAX_RESULTS]
    return fused


def fuse(
    runs: Sequence[RunFile],
    *,
    method: str = "rrf",
    norm: str | None = None,
    weights: Sequence[float] | None = None,
    k: float = 60.0,
    depth: int = 1000,
    tag: str = "fused",
) -> RunFile:
    """Fuse runs into a new run: per topic at most 1000 shots in the fused order, with their fused
    scores (strictly decreasing, so every reader keeps this exact order); ``tag`` is cleaned
    (:func:`safe_run_id`)."""
    fused = fused_scores(runs, method=method, norm=norm, weights=weights, k=k, depth=depth)
    tag = safe_run_id(tag)
    entries = (
        (topic, shot, float(written))
        for topic, ranked in fused.items()
        for (shot, _), written in zip(ranked, strictly_decreasing_scores([score for _, score in ranked]))
    )
    return RunFile.from_entries(entries, name=tag, tag=tag)


def fuse_files(
    paths: Sequence[str | Path],
    out: str | Path,
    *,
    method: str = "rrf",
    norm: str | None = None,
    weights: Sequence[float] | None = None,
    k: float = 60.0,
    depth: int = 1000,
    tag: str = "fused",
    on_warning: Callable[[str], None] | None = None,
) -> RunFile:
    """Read run files, fuse them and write the result atomically to ``out`` (never one of ``paths``).

    ``on_warning`` gets one message per run whose score column contradicts its rank column.
    """
    refuse_overwriting_inputs(paths, out)
    runs = [RunFile.read(p) for p in paths]
    if on_warning is not None:
        from avsbench.eval.scoring import rank_conflict_warning

        for run in runs:
            if conflicts := run.rank_conflicts():
                on_warning(rank_conflict_warning(run.name, conflicts, "fused"))
    fused = fuse(runs, method=method, norm=norm, weights=weights, k=k, depth=depth, tag=tag)
    fused.write(out)
    return fused


def refuse_overwriting_inputs(paths: Sequence[str | Path], out: str | Path) -> None:
    """Raise when ``out`` is one of the input files (same resolved path, or the same file by another name)."""
    target = Path(out).resolve()
    for path in paths:
        source = Path(path)
        same = source.resolve() == target or (target.exists() and source.exists() and os.path.samefile(source, target))
        if same:
            raise ConfigError(
                f"the output file is the input run {str(path)!r}",
                path=out,
                expected="an output file that is not one of the runs fused",
            )
