"""``avsbench rank`` as a library call: model + collection + years -> TREC runs with provenance.

Years that share a collection (2019, 2020, 2021 and progress on V3C1) are ranked in one pass:
the collection is streamed and encoded once and scored against all their topics together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from avsbench import __version__
from avsbench.data.collection import Collection
from avsbench.data.runs import safe_run_id
from avsbench.data.topics import TopicSet, Year, get_year
from avsbench.errors import ConfigError, InputFormatError, MissingDataError, UnknownIdError
from avsbench.model.checkpoint import WEIGHTS_FILE, LoadedModel, load_model
from avsbench.model.clip_text_source import plan_text_sources
from avsbench.ranking.cache import CacheEntryWriter, EmbeddingCache, feature_fingerprint, sha256_file, sha256_lines
from avsbench.ranking.engine import RankOutcome, rank_shots
from avsbench.ranking.finite import check_text_embeddings, check_text_inputs, check_weights
from avsbench.ranking.output import write_provenance, write_trec_run
from avsbench.ranking.precision import RankSettings, plan_ranking, resolve_device
from avsbench.ranking.stream import FeatureSource, FrameSource

TOPIC_GROUPS = ("main", "progress")


@dataclass
class YearRun:
    """One written run: the evaluation, its files and the qrels to score it with, if any."""

    year: Year
    topics: TopicSet
    run_path: Path
    provenance_path: Path
    qrels_path: Path | None = None  # the year's qrels when found (under the root, or bundled)
    synthetic: bool = False


@dataclass
class RankReport:
    """Everything ``rank_years`` did: the runs and the engine's outcome per collection."""

    runs: list[YearRun] = field(default_factory=list)
    outcomes: dict[str, RankOutcome] = field(default_factory=dict)
    cache_hits: dict[str, bool] = field(default_factory=dict)
    text_sources: dict[str, list[dict]] = field(default_factory=dict)  # collection -> where each text feature came from


def select_years(years: Sequence[Year], groups: Sequence[str]) -> list[Year]:
    """Apply ``--topics main,progress``: keep the main topics and/or add the progress topics
    (591-610, V3C1) when a V3C1 year is asked for."""
    unknown = [g for g in groups if g not in TOPIC_GROUPS]
    if unknown or not groups:
        raise ConfigError(f"unknown topic group(s) {unknown or list(groups)}", expected="main and/or progress")
    progress = get_year("progress")
    out = [y for y in years if y.key == "progress" or "main" in groups]
    if "progress" in groups and progress not in out and any(y.collection == progress.collection for y in years):
        out.append(progress)
    if not out:
        raise ConfigError("no topics left to rank", expected="--topics main, or a V3C1 year with --topics progress")
    return out


def model_fingerprint(model_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of the model folder (name -> hash) and of the whole."""
    files = {p.name: sha256_file(p) for p in sorted(model_dir.iterdir()) if p.is_file()}
    whole = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in files.items()).encode()).hexdigest()
    return {"sha256": whole, **{f"file:{k}": v for k, v in files.items()}}


@dataclass
class TopicEncoding:
    """Text embeddings of the topics, in order, and where each precomputed text feature came from."""

    embeddings: torch.Tensor  # (topics, heads, head_dim) float32
    text_sources: list[dict]


def encode_topics(
    loaded: LoadedModel,
    collection: Collection,
    topic_sets: Sequence[TopicSet],
    device: torch.device,
    *,
    clip_text: str = "auto",
    clip_truncation: str = "reference",
) -> TopicEncoding:
    """Encode every topic of ``topic_sets``.

    Precomputed text features are read from ``<collection>/TextData/<name>/``, keyed by the plain
    topic number; the model's CLIP feature may instead be computed online (``clip_text``, see
    :mod:`avsbench.model.clip_text_source`).
    """
    topics = [t for ts in topic_sets for t in ts]
    texts, ids = [t.text for t in topics], [str(t.number) for t in topics]
    sources = plan_text_sources(
        loaded.text_pipeline, collection.text_dir, texts, ids, clip_text=clip_text, truncation=clip_truncation
    )
    try:
        inputs = loaded.text_pipeline.featurize(texts, ids, sources.precomputed, online=sources.online)
    except UnknownIdError as exc:
        raise MissingDataError(
            f"{exc.message} (topics are keyed by plain topic number)", path=exc.path, expected="a row for every topic"
        ) from None
    numbers = [t.number for t in topics]
    check_text_inputs(inputs, {name: bigfile.feature_path for name, bigfile in sources.precomputed.items()}, numbers)
    with torch.inference_mode():
        embeddings = loaded.model.encode_texts({k: v.to(device) for k, v in inputs.items()}).float()
    check_text_embeddings(embeddings, numbers)
    return TopicEncoding(embeddings, sources.record)


def topic_embeddings(
    loaded: LoadedModel, collection: Collection, topic_sets: Sequence[TopicSet], device: torch.device
) -> torch.Tensor:
    """(topics, heads, head_dim) float32 text embeddings of every topic, in order (``--clip-text auto``)."""
    return encode_topics(loaded, collection, topic_sets, device).embeddings


def _video_sources(
    loaded: LoadedModel, collection: Collection, shots: list[str]
) -> tuple[list[FeatureSource], list[dict]]:
    sources: list[FeatureSource] = []
    described: list[dict] = []
    for spec in loaded.config.video_features:
        if spec.kind == "frame":
            frames = collection.frame_feature(spec.name, max_frame=loaded.config.max_frames)
            bigfile = frames.bigfile
        else:
            bigfile = collection.feature(spec.name)
        if bigfile.dim != spec.dim:
            raise InputFormatError(
                f"feature is {bigfile.dim}-d but the model expects {spec.dim}", path=bigfile.path / "shape.txt"
            )
        if spec.kind == "frame":
            sources.append(FrameSource(spec.name, frames, shots, loaded.config.max_frames))
        else:
            sources.append(FeatureSource(spec.name, bigfile, shots))
        described.append(
            feature_fingerprint(spec.name, bigfile)
            | {"kind": spec.kind, "path": str(bigfile.path), "aligned_with_shot_list": sources[-1].aligned}
        )
    return sources, described


@dataclass
class _RankContext:
    """What every collection and year of one ``rank_years`` call shares."""

    loaded: LoadedModel
    device: torch.device
    model_dir: Path
    model_hash: dict[str, str]
    settings: RankSettings
    tag: str
    out_dir: Path
    seed: int
    started: float
    clip_text: str = "auto"
    clip_truncation: str = "reference"


@dataclass
class _CollectionRanking:
    """One collection ranked for the topics of its years in one pass."""

    collection: Collection
    years: list[Year]
    topic_sets: list[TopicSet]
    shots: list[str]
    n_excluded: int
    features: list[dict]
    outcome: RankOutcome
    cache: EmbeddingCache | None
    cache_hit: bool
    text_sources: list[dict]


def rank_years(
    years: Sequence[Year],
    model_dir: str | Path,
    *,
    settings: RankSettings,
    rootpath: str | Path | None = None,
    collection_name: str | None = None,
    out_dir: str | Path = "runs",
    run_id: str | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    clip_text: str = "auto",
    clip_truncation: str = "reference",
) -> RankReport:
    """Rank the topics of ``years`` with the model in ``model_dir``; write one run (and sidecar) per year.

    ``progress(label, total_shots)`` may return a callback that receives the shots done per chunk.
    ``clip_text`` (auto, online, precomputed) and ``clip_truncation`` (reference, openai) say how
    the model's CLIP text feature is obtained (:mod:`avsbench.model.clip_text_source`).
    """
    started = time.perf_counter()
    model_dir = Path(model_dir)
    torch.manual_seed(seed)
    device = resolve_device(settings.device)
    loaded = load_model(model_dir, device, rootpath=rootpath)
    check_weights(loaded.model, model_dir / WEIGHTS_FILE)
    ctx = _RankContext(
        loaded,
        device,
        model_dir,
        model_fingerprint(model_dir),
        settings,
        safe_run_id(run_id or model_dir.resolve().name),
        Path(out_dir),
        seed,
        started,
        clip_text,
        clip_truncation,
    )
    if cache_dir is not None and ctx.clip_text != "precomputed":
        weights_hash = ctx.model_hash.get(f"file:{WEIGHTS_FILE}", ctx.model_hash["sha256"])
        loaded.text_pipeline.clip_cache_dir = Path(cache_dir) / "clip_text" / weights_hash[:24]
    groups: dict[str, list[Year]] = {}
    for y in years:
        groups.setdefault(collection_name or y.collection, []).append(y)
    report = RankReport()
    for name, group in groups.items():
        ranked = _rank_collection(ctx, Collection(rootpath, name), group, cache_dir, progress)
        report.outcomes[name] = ranked.outcome
        report.cache_hits[name] = ranked.cache_hit
        report.text_sources[name] = ranked.text_sources
        report.runs += _write_year_runs(ctx, ranked)
    return report


def _open_embedding_cache(
    ctx: _RankContext, cache_dir: str | Path | None, features: list[dict], shots: list[str], precision: str
) -> tuple[EmbeddingCache | None, FeatureSource | None, CacheEntryWriter | None]:
    """The embedding cache entry of this model, features, shots and precision: ``(cache, source, writer)``.

    A complete entry is read through ``source``; otherwise ``writer`` fills it while ranking. All None without a cache.
    """
    if cache_dir is None:
        return None, None, None
    cache = EmbeddingCache(
        cache_dir,
        {
            "model": ctx.model_hash["sha256"],
            "features": [{k: v for k, v in f.items() if k != "path"} for f in features],
            "shots": sha256_lines(shots),
            "precision": precision,
        },
    )
    if cache.complete:
        return cache, FeatureSource("embeddings", cache.open(), shots), None
    return cache, None, cache.writer(shots, ctx.loaded.config.common_dim)


def _rank_collection(
    ctx: _RankContext,
    collection: Collection,
    years: list[Year],
    cache_dir: str | Path | None,
    progress: Callable[[str, int], Callable[[int], None]] | None,
) -> _CollectionRanking:
    """Rank every searchable shot of ``collection`` for the topics of ``years`` in one pass (through the
    embedding cache, if any)."""
    loaded = ctx.loaded
    shots = collection.searchable_shots  # without V3C1's dropped shots: never encoded, never returned
    topic_sets = [collection.topics(y) for y in years]
    encoded = encode_topics(
        loaded, collection, topic_sets, ctx.device, clip_text=ctx.clip_text, clip_truncation=ctx.clip_truncation
    )
    text = encoded.embeddings
    plan = plan_ranking(ctx.settings, shots=len(shots), topics=text.shape[0])
    sources, features = _video_sources(loaded, collection, shots)
    cache_source = None
    try:
        cache, cache_source, writer = _open_embedding_cache(ctx, cache_dir, features, shots, plan.precision)
        callback = (
            progress(f"{collection.name}: {len(shots):,} shots x {text.shape[0]} topics", len(shots))
            if progress
            else None
        )
        if cache is not None and writer is not None:
            with writer:
                outcome = rank_shots(
                    loaded.model, sources, shots, text, plan, cache_writer=writer.append, progress=callback
                )
        else:
            outcome = rank_shots(loaded.model, sources, shots, text, plan, cache_source=cache_source, progress=callback)
    finally:
        for src in [*sources, *([cache_source] if cache_source else [])]:
            src.close()
    n_excluded = len(collection.shots) - len(shots)
    return _CollectionRanking(
        collection,
        years,
        topic_sets,
        shots,
        n_excluded,
        features,
        outcome,
        cache,
        cache_source is not None,
        encoded.text_sources,
    )


def _write_year_runs(ctx: _RankContext, ranked: _CollectionRanking) -> list[YearRun]:
    """Write each year's run (its topics' slice of the rankings) and its provenance sidecar."""
    runs: list[YearRun] = []
    outcome, shots, collection = ranked.outcome, ranked.shots, ranked.collection
    first = 0
    for year, topic_set in zip(ranked.years, ranked.topic_sets):
        last = first + len(topic_set)
        rankings = outcome.rankings[first:last]
        uncertified = [topic_set.numbers[t - first] for t in outcome.uncertified_topics if first <= t < last]
        first = last
        run_path = ctx.out_dir / f"{ctx.tag}.{year.edition}.txt"
        write_trec_run(
            run_path, topic_set.numbers, [([shots[i] for i in r.rows.tolist()], r.scores) for r in rankings], ctx.tag
        )
        side = write_provenance(run_path, _provenance(ctx, ranked, year, topic_set, run_path, uncertified))
        runs.append(
            YearRun(year, topic_set, run_path, side, collection.qrels_path(year), synthetic=collection.is_synthetic)
        )
    return runs


def _provenance(
    ctx: _RankContext,
    ranked: _CollectionRanking,
    year: Year,
    topic_set: TopicSet,
    run_path: Path,
    uncertified: list[int],
) -> dict:
    """The JSON sidecar of one year's run."""
    collection, shots, cache = ranked.collection, ranked.shots, ranked.cache
    return {
        "format": "avsbench-rank-provenance",
        "version": 1,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": {
            "file": run_path.name,
            "tag": ctx.tag,
            "year": year.key,
            "edition": year.edition,
            "top_k": ctx.settings.top_k,
            "score_column": "float32 score, 10 decimals, ties kept strictly decreasing by 1e-10 steps (scorer order)",
        },
        "topics": {
            "name": topic_set.name,
            "source": topic_set.source or "bundled",
            "sha256": topic_set.sha256,
            "count": len(topic_set),
            "numbers": topic_set.numbers,
        },
        "collection": {
            "name": collection.name,
            "path": str(collection.path),
            "synthetic": collection.is_synthetic,
            "ranked_shots": len(shots),
            "ranked_shots_sha256": sha256_lines(shots),
            "excluded_dropped_shots": ranked.n_excluded,
        },
        "model": _model_record(ctx),
        "features": ranked.features,
        "text_features": ranked.text_sources,
        "engine": _engine_record(ranked.outcome, uncertified),
        "cache": None if cache is None else {"dir": str(cache.path), "key": cache.key, "hit": ranked.cache_hit},
        "software": {
            "avsbench": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "seed": ctx.seed,
        "wall_time_s": round(time.perf_counter() - ctx.started, 3),
    }


def _model_record(ctx: _RankContext) -> dict:
    """The model part of a provenance sidecar: folder, hashes, shape and features."""
    cfg = ctx.loaded.config
    return {
        "dir": str(ctx.model_dir.resolve()),
        **ctx.model_hash,
        "heads": cfg.heads,
        "common_dim": cfg.common_dim,
        "video_features": [{"name": s.name, "dim": s.dim, "transform": s.transform} for s in cfg.video_features],
        "text_features": [{"name": s.name, "dim": s.dim, "kind": s.kind} for s in cfg.text_features],
    }


def _engine_record(outcome: RankOutcome, uncertified: list[int]) -> dict:
    """The engine part of a provenance sidecar: how the pass ran and what it cost."""
    return {
        "device": outcome.device,
        "precision": outcome.precision,
        "batch_size": outcome.batch_size,
        "chunk_rows": outcome.chunk_rows,
        "candidates_per_topic": outcome.candidates_per_topic,
        "rescored_shots": outcome.rescored_shots,
        "max_screening_score_error": outcome.max_screen_error,
        "uncertified_topics_ranked_again_in_fp32": uncertified,
        "ranked_shots": outcome.shots,
        "rank_seconds": round(outcome.seconds, 3),
        "shots_per_second": round(outcome.shots_per_second, 1),
    }
