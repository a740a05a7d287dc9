"""The ranking engine: stream a collection once, encode each chunk once, score it against all
topics, keep per-topic top-k in the scorer's order.

What precision the pass runs in, and why a screened (bf16 / int8) pass still gives the float32
ranking, is :mod:`avsbench.ranking.precision`; this module runs the pass (:class:`_StreamingPass`)
and, for a screened pass, the float32 re-scoring of the candidates (:func:`_rescore_fp32`).

Memory: the read-ahead buffers (2 chunks on CPU, 3 pinned on CUDA), one batch of activations
and the per-topic heaps; nothing of the features or the score matrix is kept. What grows with
the collection is id bookkeeping only (the shot ids and their byte-order keys, ~100 bytes per
shot, ~110 MB for V3C1).

float32 results do not depend on how shots are batched: every encoder call gets exactly
``batch_size`` rows (the last batch is zero-padded), so the GEMM kernels, and thus the bits of
every score, are the same in the streaming pass and in the re-scoring.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from avsbench.errors import ConfigError, InputFormatError
from avsbench.ranking.finite import EXPECTED_VALUES, first_bad_value
from avsbench.ranking.precision import (
    RankPlan,
    RankSettings,
    certified,
    error_sample_rows,
    int8_screening_model,
    plan_ranking,
    screening_error,
)
from avsbench.ranking.stream import Chunk, ChunkReader, FeatureSource
from avsbench.ranking.topk import TopK, scorer_sort, shot_id_keys


class VideoScorer(Protocol):
    """What the engine needs from a model (``LaffModel`` has both)."""

    def encode_videos(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor: ...

    def similarity(self, text_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor: ...


@dataclass
class TopicRanking:
    """One topic's final ranking: shot-list positions and float32 scores, best first."""

    rows: np.ndarray
    scores: np.ndarray


@dataclass
class RankOutcome:
    """Rankings (one per text row, in input order) and what the pass did."""

    rankings: list[TopicRanking]
    shots: int
    seconds: float
    device: str
    precision: str
    batch_size: int
    chunk_rows: int
    from_cache: bool = False
    rescored_shots: int = 0
    candidates_per_topic: int = 0
    max_screen_error: float = 0.0
    uncertified_topics: list[int] = field(default_factory=list)

    @property
    def shots_per_second(self) -> float:
        return self.shots / self.seconds if self.seconds > 0 else float("inf")


class _Encoder:
    """Encode feature rows to flattened embeddings and score them, in fixed-size batches."""

    def __init__(
        self, model: VideoScorer, names: Sequence[str], text: torch.Tensor, batch: int, device: torch.device
    ) -> None:
        """``names``: the model input of each tensor given to :meth:`embed` (``<frame feature>.mask`` for masks)."""
        self.model = model
        self.names = list(names)
        self.text = text
        self.batch = batch
        self.device = device

    def embed(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """(n, heads, head_dim) float32 embeddings of rows given per input (n <= batch), in the
        caller's autocast state."""
        n = inputs[0].shape[0]
        if n < self.batch:  # pad so every GEMM has the same shape (zero features, all-True masks)
            inputs = [
                torch.cat([x, (x.new_ones if x.dtype == torch.bool else x.new_zeros)((self.batch - n, *x.shape[1:]))])
                for x in inputs
            ]
        return self.model.encode_videos(dict(zip(self.names, inputs)))[:n].float()

    def score(self, emb: torch.Tensor) -> torch.Tensor:
        """(topics, n) float32 scores, always outside autocast."""
        n = emb.shape[0]
        if n < self.batch:
            emb = torch.cat([emb, emb.new_zeros((self.batch - n, *emb.shape[1:]))])
        with torch.autocast(self.device.type, enabled=False):
            return self.model.similarity(self.text, emb)[:, :n].float()


def _excluded_mask(excluded: np.ndarray, start: int, stop: int) -> np.ndarray:
    lo, hi = np.searchsorted(excluded, [start, stop])
    return excluded[lo:hi] - start


def rank_shots(
    model: VideoScorer,
    sources: Sequence[FeatureSource],
    shot_ids: Sequence[str],
    text_emb: torch.Tensor,
    settings: RankSettings | RankPlan,
    *,
    excluded: Sequence[int] = (),
    cache_source: FeatureSource | None = None,
    cache_writer: Callable[[np.ndarray], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RankOutcome:
    """Rank every shot of ``shot_ids`` for every row of ``text_emb`` (topics, heads, head_dim).

    ``settings``: the user's knobs, or a plan already resolved from them (:func:`plan_ranking`).
    ``sources`` are the model's video features in its stacking order, aligned on ``shot_ids``.
    ``excluded`` are shot-list positions never returned (e.g. V3C1's dropped shots).
    ``cache_source`` streams precomputed flattened embeddings instead of encoding;
    ``cache_writer`` receives each chunk's flattened float32 embeddings in order.
    """
    t0 = time.perf_counter()
    plan = (
        settings
        if isinstance(settings, RankPlan)
        else plan_ranking(settings, shots=len(shot_ids), topics=text_emb.shape[0])
    )
    run = _StreamingPass(model, sources, shot_ids, text_emb, plan, excluded, cache_source)
    with torch.inference_mode():
        run.stream(cache_writer, progress)
        outcome = run.outcome()
        if plan.screening:
            _rescore_fp32(run, outcome)
            if outcome.uncertified_topics:
                redo = outcome.uncertified_topics
                exact = rank_shots(model, sources, shot_ids, text_emb[redo], plan.exact(), excluded=excluded)
                for t, ranking in zip(redo, exact.rankings):
                    outcome.rankings[t] = ranking
        else:
            outcome.rankings = [
                TopicRanking(r[: plan.top_k], s[: plan.top_k]) for r, s in zip(run.top.rows, run.top.scores)
            ]
    outcome.seconds = time.perf_counter() - t0
    return outcome


class _StreamingPass:
    """One pass over the collection: read chunks, encode them (or take cached embeddings), score
    them against every topic, keep each topic's candidates and, when screening, the approximate
    scores of the error sample."""

    def __init__(
        self,
        model: VideoScorer,
        sources: Sequence[FeatureSource],
        shot_ids: Sequence[str],
        text_emb: torch.Tensor,
        plan: RankPlan,
        excluded: Sequence[int],
        cache_source: FeatureSource | None,
    ) -> None:
        self.plan = plan
        self.sources = sources
        self.shot_ids = shot_ids
        self.cache_source = cache_source
        n_topics, self.heads, self.head_dim = text_emb.shape
        found = first_bad_value(text_emb, limit=float("inf"))
        if found is not None:
            raise InputFormatError(f"text embedding row {found[0][0]} holds {found[1]}", expected="finite values")
        self.keys = shot_id_keys(shot_ids)
        self.top = TopK(n_topics, plan.candidates, self.keys)
        self.excluded = np.unique(np.asarray(excluded, dtype=np.int64))
        # screening: shots spread over the collection whose approximate scores are kept, so the error
        # estimate behind the certificate is not drawn from the top of the ranking only
        self.sample_rows = error_sample_rows(len(shot_ids), self.excluded) if plan.screening else np.empty(0, np.int64)
        self.sample_approx = np.empty((n_topics, self.sample_rows.size), dtype=np.float32)
        names = [name for s in sources for name in s.input_names]
        text = text_emb.to(plan.device).float()
        self.exact_encoder = _Encoder(model, names, text, plan.batch, plan.device)
        self.pass_encoder = self.exact_encoder
        if plan.precision == "int8" and cache_source is None:
            if not isinstance(model, nn.Module):
                raise ConfigError(
                    "int8 screening quantizes the Linear layers of a torch module", expected="--precision fp32"
                )
            self.pass_encoder = _Encoder(int8_screening_model(model), names, text, plan.batch, plan.device)
        self.scores = torch.empty((n_topics, plan.chunk_rows), dtype=torch.float32, device=plan.device)

    def stream(self, cache_writer: Callable[[np.ndarray], None] | None, progress: Callable[[int], None] | None) -> None:
        """Read, encode and score every chunk; hand each chunk's embeddings to ``cache_writer``."""
        plan = self.plan
        stream = [self.cache_source] if self.cache_source is not None else list(self.sources)
        # one autocast context for the whole pass: its cache keeps the bf16 copies of the weights
        amp = (
            torch.autocast(plan.device.type, dtype=torch.bfloat16)
            if plan.precision == "bf16"
            else contextlib.nullcontext()
        )
        slots = 3 if plan.cuda else 2
        with (
            ChunkReader(
                stream,
                len(self.shot_ids),
                plan.chunk_rows,
                slots=slots,
                pin_memory=plan.cuda,
                io_threads=plan.io_threads,
            ) as reader,
            amp,
        ):
            for chunk in reader:
                on_device = [b.to(plan.device, non_blocking=True) for b in chunk.buffers]
                if plan.cuda:  # the pinned buffer may be refilled once the copy is done
                    event = torch.cuda.Event()
                    event.record()
                    reader.release(chunk, event)
                if self.cache_source is None:
                    check_feature_rows(self.sources, on_device, range(chunk.start, chunk.stop), self.shot_ids)
                block, embeddings = self._score_chunk(chunk, on_device, keep_embeddings=cache_writer is not None)
                self._keep(chunk, block)
                if cache_writer is not None and embeddings:
                    cache_writer(torch.cat(embeddings).cpu().numpy())
                if not plan.cuda:  # on the CPU the buffer itself was used: hand it back only now
                    reader.release(chunk)
                if progress is not None:
                    progress(chunk.stop - chunk.start)

    def _score_chunk(
        self, chunk: Chunk, on_device: list[torch.Tensor], *, keep_embeddings: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(topics, n) float32 scores of the chunk's shots and, if asked, their flattened embeddings per batch."""
        n = chunk.stop - chunk.start
        embeddings: list[torch.Tensor] = []
        for a in range(0, n, self.plan.batch):
            b = min(a + self.plan.batch, n)
            if self.cache_source is not None:
                emb = on_device[0][a:b].view(b - a, self.heads, self.head_dim)
            else:
                emb = self.pass_encoder.embed([x[a:b] for x in on_device])
                if keep_embeddings:
                    embeddings.append(emb.reshape(b - a, -1))
            self.scores[:, a:b] = self.exact_encoder.score(emb)
        return self.scores[:, :n], embeddings

    def _keep(self, chunk: Chunk, block: torch.Tensor) -> None:
        """Merge a chunk's scores into the candidates (excluded shots never enter) and record the error sample's."""
        if torch.isnan(block).any():
            col = int(torch.isnan(block).any(dim=0).nonzero()[0, 0])
            topic = int(torch.isnan(block[:, col]).nonzero()[0, 0])
            cached = self.cache_source is not None
            raise InputFormatError(
                f"score is NaN for shot {self.shot_ids[chunk.start + col]} and topic row {topic}: "
                + (
                    "its cached embedding holds NaN"
                    if cached
                    else "the model gives NaN although the features are finite"
                ),
                path=self.cache_source.path if self.cache_source is not None else None,
            )
        drop = _excluded_mask(self.excluded, chunk.start, chunk.stop)
        if drop.size:
            block[:, torch.from_numpy(drop).to(self.plan.device)] = -torch.inf
        self.top.push_chunk(block, chunk.start)
        lo, hi = np.searchsorted(self.sample_rows, [chunk.start, chunk.stop])
        if hi > lo:
            picked = torch.from_numpy(self.sample_rows[lo:hi] - chunk.start).to(self.plan.device)
            self.sample_approx[:, lo:hi] = block[:, picked].cpu().numpy()

    def outcome(self) -> RankOutcome:
        """What the pass did, rankings still to fill in."""
        plan = self.plan
        return RankOutcome(
            rankings=[],
            shots=len(self.shot_ids) - int(self.excluded.size),
            seconds=0.0,
            device=str(plan.device),
            precision=plan.precision,
            batch_size=plan.batch,
            chunk_rows=plan.chunk_rows,
            from_cache=self.cache_source is not None,
            candidates_per_topic=plan.candidates,
        )


class _ExactScores:
    """float32 scores of the re-scored shots against every topic (columns: shot rows, sorted), grown on demand."""

    def __init__(
        self,
        encoder: _Encoder,
        sources: Sequence[FeatureSource],
        shot_ids: Sequence[str],
        pool: ThreadPoolExecutor,
        n_topics: int,
    ) -> None:
        self.encoder = encoder
        self.shot_ids = shot_ids
        self.sources = sources
        self.pool = pool
        self.done = np.empty(0, dtype=np.int64)  # re-scored shot rows, sorted
        self.scores = np.empty((n_topics, 0), dtype=np.float32)

    def add(self, wanted: np.ndarray) -> None:
        """Re-encode and score in float32 the shot rows of ``wanted`` (sorted, unique) not scored yet."""
        new = np.setdiff1d(wanted, self.done, assume_unique=True)
        if not new.size:
            return
        fresh = np.empty((self.scores.shape[0], new.size), dtype=np.float32)
        for a in range(0, new.size, self.encoder.batch):
            positions = new[a : a + self.encoder.batch]
            fresh[:, a : a + positions.size] = (
                self.encoder.score(self.encoder.embed(self._read(positions))).cpu().numpy()
            )
        done = np.concatenate([self.done, new])
        scores = np.concatenate([self.scores, fresh], axis=1)
        order = np.argsort(done, kind="stable")
        self.done, self.scores = done[order], scores[:, order]

    def of(self, rows: np.ndarray, topic: int | None = None) -> np.ndarray:
        """Scores of already re-scored ``rows``: (topics, rows), or (rows,) for one ``topic``."""
        columns = np.searchsorted(self.done, rows)
        return self.scores[:, columns] if topic is None else self.scores[topic, columns]

    def _read(self, positions: np.ndarray) -> list[torch.Tensor]:
        per_source = [
            [torch.empty(shape, dtype=dtype) for shape, dtype in src.buffer_shapes(positions.size)]
            for src in self.sources
        ]
        jobs = [(src, [b.numpy() for b in bufs]) for src, bufs in zip(self.sources, per_source)]
        list(self.pool.map(lambda job: job[0].fill_positions(positions, job[1]), jobs))
        check_feature_rows(self.sources, [b for bufs in per_source for b in bufs], positions, self.shot_ids)
        return [b.to(self.encoder.device) for bufs in per_source for b in bufs]


def check_feature_rows(
    sources: Sequence[FeatureSource],
    buffers: Sequence[torch.Tensor],
    positions: Sequence[int] | np.ndarray,
    shot_ids: Sequence[str],
) -> None:
    """Raise naming the file, row and shot of the first NaN, infinite or huge value in ``buffers``
    (every source's, in order) holding the shot-list ``positions``."""
    buffer_of_source = iter(buffers)
    for src in sources:
        for _ in src.input_names:
            found = first_bad_value(next(buffer_of_source))
            if found is not None:
                (row, *frame), value = found
                position = int(positions[row])
                file_row = src.file_row(position, frame[0] if len(frame) == 2 else 0)
                raise InputFormatError(
                    f"feature value {value:g} in row {file_row} "
                    f"(shot {shot_ids[position]}, line {file_row + 1} of id.txt)",
                    path=src.path,
                    expected=EXPECTED_VALUES,
                )


def _rescore_fp32(run: _StreamingPass, outcome: RankOutcome) -> None:
    """Re-encode a growing prefix of every topic's candidates in float32 until its certificate
    holds (or every candidate is re-scored); take the exact top-k from the exact scores.

    The error behind the certificates is the largest seen on the re-scored candidates and on the
    pass's error sample, re-scored too."""
    top, top_k = run.top, run.plan.top_k
    n_topics = len(top.rows)
    held = [rows.size for rows in top.rows]
    step = max(16, top_k // 8)
    upto = [min(h, top_k + step) for h in held]  # the re-scored prefix of each topic's candidates
    with ThreadPoolExecutor(max_workers=max(1, min(run.plan.io_threads, len(run.sources)))) as pool:
        exact = _ExactScores(run.exact_encoder, run.sources, run.shot_ids, pool, n_topics)
        while True:
            exact.add(np.unique(np.concatenate([run.sample_rows, *(rows[:u] for rows, u in zip(top.rows, upto))])))
            prefix = [exact.of(rows[:u], t).astype(np.float64) for t, (rows, u) in enumerate(zip(top.rows, upto))]
            err = screening_error(prefix, top.scores, exact.of(run.sample_rows), run.sample_approx)
            failing = [
                t for t in range(n_topics) if not certified(prefix[t], top.scores[t], held[t], top.k, top_k, err)
            ]
            grow = [t for t in failing if upto[t] < held[t]]
            for t in grow:
                upto[t] = min(held[t], top_k + 2 * (upto[t] - top_k))
            if not grow:
                break
    outcome.rescored_shots = int(exact.done.size)
    outcome.max_screen_error = err
    outcome.uncertified_topics = failing
    for t, (rows, u) in enumerate(zip(top.rows, upto)):
        order = scorer_sort(prefix[t].astype(np.float32), run.keys[rows[:u]])[:top_k]
        outcome.rankings.append(TopicRanking(rows[:u][order], prefix[t].astype(np.float32)[order]))
