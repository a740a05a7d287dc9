"""The ranking engine: stream a collection once, encode each chunk once, score it against all
topics, keep per-topic top-k in the scorer's order.

Precision:

* ``fp32``: encoding and scoring in float32; the kept top-k is the answer.
* ``bf16`` and ``int8`` (screening precisions): the pass encodes with a cheaper approximation of
  the model, bf16 autocast (AMX CPUs, GPUs) or int8 dynamically quantized Linear layers (x86 and
  ARM CPUs without fast bf16: about 1.8x the fp32 GEMM rate on AVX2); scores are always computed
  in float32 from those embeddings (bf16 scores would tie by the thousand). Each topic keeps
  ``top_k + margin`` candidates. After the pass a prefix of every topic's candidates is
  re-encoded in float32 and re-scored, and the final top-k comes from those exact scores. A
  per-topic certificate checks the prefix was long enough: with ``err`` the largest
  |approximate - fp32| score difference seen on the re-scored candidates and on 1024 shots
  (at most 1/16 of them) spread evenly over the collection (re-scored too), no shot outside the
  prefix can reach the fp32 k-th score if ``first approximate score left out + 2 * err < fp32
  k-th score``. Topics that fail get a prefix twice as long (up to all their candidates), and
  those that fail with every candidate re-scored (a margin too small for how close their scores
  are) are ranked again by a float32 pass, so the result always equals the float32 ranking; they
  are reported in ``uncertified_topics``.

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
import copy
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
from torch import nn

from avsbench.errors import ConfigError, InputFormatError
from avsbench.ranking.stream import ChunkReader, FeatureSource
from avsbench.ranking.topk import TopK, scorer_sort, shot_id_keys

PRECISIONS = ("auto", "fp32", "bf16", "int8")
SCREENING_PRECISIONS = ("bf16", "int8")
# int8 encodes ~1.7x faster than fp32 on AVX2: re-scoring more than a quarter of the shots in fp32 loses
SCREENING_MAX_RESCORED = 0.25
DEVICES = ("auto", "cpu", "cuda")
CERTIFICATE_SAFETY = 2.0
ERROR_SAMPLE_SHOTS = 1024  # evenly spaced shots (at most 1/16 of them) whose screening error is measured too


class VideoScorer(Protocol):
    """What the engine needs from a model (``LaffModel`` has both)."""

    def encode_videos(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor: ...

    def similarity(self, text_emb: torch.Tensor, video_emb: torch.Tensor) -> torch.Tensor: ...


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}", expected="auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but torch sees no CUDA device", expected="--device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX or AVX512-BF16 units (bf16 GEMMs much faster than fp32)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags.split()))


def cpu_has_int8_kernels() -> bool:
    """True when torch has a quantized engine for dynamic int8 Linear layers on this CPU."""
    return bool({"x86", "fbgemm", "qnnpack"} & set(torch.backends.quantized.supported_engines))


def resolve_precision(name: str, device: torch.device, *, shots: int | None = None, candidates: int | None = None) -> str:
    """``auto`` -> on a CPU, bf16 where it runs bf16 GEMMs fast (AMX, AVX512-BF16), else int8
    where torch has int8 kernels, else fp32; on a GPU fp32 (its pass is bound by streaming the
    features from the page cache, so a bf16 pass saves little and its re-scoring reads cost more:
    slower end to end on an H200). Every choice gives the fp32 ranking. Given the number of
    ``shots`` and of ``candidates`` (topics x top-k), ``auto`` screens only when the fp32
    re-scoring touches at most :data:`SCREENING_MAX_RESCORED` of the shots (else fp32 is faster)."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}", expected="auto, fp32, bf16 or int8")
    if name == "int8" and device.type != "cpu":
        raise ConfigError("--precision int8 runs on the CPU only", expected="--precision bf16 or fp32 on a GPU")
    if name == "int8" and not cpu_has_int8_kernels():
        raise ConfigError("this torch build has no quantized engine for int8 on this CPU", expected="--precision fp32 or auto")
    if name != "auto":
        return name
    if shots is not None and candidates is not None and candidates > SCREENING_MAX_RESCORED * shots:
        return "fp32"
    if device.type == "cuda":
        return "fp32"
    if cpu_has_fast_bf16():
        return "bf16"
    return "int8" if cpu_has_int8_kernels() else "fp32"


def int8_screening_model(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose Linear layers run as dynamically quantized int8 GEMMs (CPU)."""
    with warnings.catch_warnings():  # torch marks its eager quantization API as deprecated; 2.13 (pinned) has it
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8).eval()


@dataclass
class RankSettings:
    """Knobs of one ranking pass (``None`` = a default chosen for the device)."""

    top_k: int = 1000
    precision: str = "auto"
    device: str = "auto"
    batch_size: int | None = None
    chunk_rows: int | None = None
    rescore_margin: int | None = None
    io_threads: int | None = None

    def batch_for(self, device: torch.device) -> int:
        return self.batch_size or (16384 if device.type == "cuda" else 1024)

    def chunk_for(self, device: torch.device, batch: int) -> int:
        # CPU: encoding is ~1000x slower than reading a page-cached row, so small chunks (less RSS)
        rows = self.chunk_rows or (65536 if device.type == "cuda" else 1024)
        return max(batch, rows // batch * batch)  # a whole number of batches


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

    def __init__(self, model: VideoScorer, names: Sequence[str], text: torch.Tensor, batch: int, device: torch.device) -> None:
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
            inputs = [torch.cat([x, (x.new_ones if x.dtype == torch.bool else x.new_zeros)((self.batch - n, *x.shape[1:]))]) for x in inputs]
        return self.model.encode_videos(dict(zip(self.names, inputs)))[:n].float()

    def score(self, emb: torch.Tensor) -> torch.Tensor:
        """(topics, n) float32 scores, always outside autocast."""
        n = emb.shape[0]
        if n < self.batch:
            emb = torch.cat([emb, emb.new_zeros((self.batch - n, *emb.shape[1:]))])
        with torch.autocast(self.device.type, enabled=False):
            return self.model.similarity(self.text, emb)[:, :n].float()


def error_sample_rows(n_shots: int, excluded: np.ndarray) -> np.ndarray:
    """Shot-list positions spread evenly over the collection (at most 1/16 of it, at most
    :data:`ERROR_SAMPLE_SHOTS`) whose screening error is measured too; never an excluded one."""
    evenly = np.linspace(0, n_shots - 1, min(n_shots // 16, ERROR_SAMPLE_SHOTS)).astype(np.int64)
    return np.setdiff1d(evenly, excluded)


def _excluded_mask(excluded: np.ndarray, start: int, stop: int) -> np.ndarray:
    lo, hi = np.searchsorted(excluded, [start, stop])
    return excluded[lo:hi] - start


def rank_shots(
    model: VideoScorer,
    sources: Sequence[FeatureSource],
    shot_ids: Sequence[str],
    text_emb: torch.Tensor,
    settings: RankSettings,
    *,
    excluded: Sequence[int] = (),
    cache_source: FeatureSource | None = None,
    cache_writer: Callable[[np.ndarray], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> RankOutcome:
    """Rank every shot of ``shot_ids`` for every row of ``text_emb`` (topics, heads, head_dim).

    ``sources`` are the model's video features in its stacking order, aligned on ``shot_ids``.
    ``excluded`` are shot-list positions never returned (e.g. V3C1's dropped shots).
    ``cache_source`` streams precomputed flattened embeddings instead of encoding;
    ``cache_writer`` receives each chunk's flattened float32 embeddings in order.
    """
    t0 = time.perf_counter()
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device, shots=len(shot_ids), candidates=text_emb.shape[0] * settings.top_k)
    screening = precision in SCREENING_PRECISIONS
    if settings.top_k < 1:
        raise ConfigError(f"top-k {settings.top_k}", expected="a positive number of shots")
    batch = settings.batch_for(device)
    chunk_rows = settings.chunk_for(device, batch)
    n_shots = len(shot_ids)
    n_topics, heads, head_dim = text_emb.shape
    keep = settings.top_k + ((settings.rescore_margin if settings.rescore_margin is not None else settings.top_k) if screening else 0)
    keys = shot_id_keys(shot_ids)
    top = TopK(n_topics, keep, keys)
    excluded_rows = np.unique(np.asarray(excluded, dtype=np.int64))
    # screening: shots spread over the collection whose approximate scores are kept, so the error
    # estimate behind the certificate is not drawn from the top of the ranking only
    sample_rows = error_sample_rows(n_shots, excluded_rows) if screening else np.empty(0, np.int64)
    sample_approx = np.empty((n_topics, sample_rows.size), dtype=np.float32)
    text = text_emb.to(device).float()
    names = [name for s in sources for name in s.input_names]
    enc = _Encoder(model, names, text, batch, device)
    pass_enc = _Encoder(int8_screening_model(model), names, text, batch, device) if precision == "int8" and cache_source is None else enc
    stream = [cache_source] if cache_source is not None else list(sources)
    cuda = device.type == "cuda"
    io_threads = settings.io_threads or (min(8, os.cpu_count() or 1) if cuda else 1)  # GPU: page-cache copies are the bound
    scores = torch.empty((n_topics, chunk_rows), dtype=torch.float32, device=device)

    # one autocast context for the whole pass: its cache keeps the bf16 copies of the weights
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with torch.inference_mode(), ChunkReader(stream, n_shots, chunk_rows, slots=3 if cuda else 2, pin_memory=cuda, io_threads=io_threads) as reader:
        with amp:
            for chunk in reader:
                n = chunk.stop - chunk.start
                on_device = [b.to(device, non_blocking=True) for b in chunk.buffers]
                if cuda:  # the pinned buffer may be refilled once the copy is done
                    event = torch.cuda.Event()
                    event.record()
                    reader.release(chunk, event)
                written: list[torch.Tensor] = []
                for a in range(0, n, batch):
                    b = min(a + batch, n)
                    if cache_source is not None:
                        emb = on_device[0][a:b].view(b - a, heads, head_dim)
                    else:
                        emb = pass_enc.embed([x[a:b] for x in on_device])
                        if cache_writer is not None:
                            written.append(emb.reshape(b - a, -1))
                    scores[:, a:b] = enc.score(emb)
                block = scores[:, :n]
                if torch.isnan(block).any():
                    col = int(torch.isnan(block).any(dim=0).nonzero()[0, 0])
                    raise InputFormatError(f"score is NaN for shot {shot_ids[chunk.start + col]} (NaN or inf in its features?)", path=sources[0].path.parent)
                drop = _excluded_mask(excluded_rows, chunk.start, chunk.stop)
                if drop.size:
                    block[:, torch.from_numpy(drop).to(device)] = -torch.inf
                top.push_chunk(block, chunk.start)
                lo, hi = np.searchsorted(sample_rows, [chunk.start, chunk.stop])
                if hi > lo:
                    sample_approx[:, lo:hi] = block[:, torch.from_numpy(sample_rows[lo:hi] - chunk.start).to(device)].cpu().numpy()
                if cache_writer is not None and written:
                    cache_writer(torch.cat(written).cpu().numpy())
                if not cuda:  # on the CPU the buffer itself was used: hand it back only now
                    reader.release(chunk)
                if progress is not None:
                    progress(n)

        outcome = RankOutcome(
            rankings=[],
            shots=n_shots - int(excluded_rows.size),
            seconds=0.0,
            device=str(device),
            precision=precision,
            batch_size=batch,
            chunk_rows=chunk_rows,
            from_cache=cache_source is not None,
            candidates_per_topic=keep,
        )
        if screening:
            _rescore_fp32(enc, sources, top, settings.top_k, keys, outcome, io_threads, sample_rows, sample_approx)
            if outcome.uncertified_topics:
                redo = outcome.uncertified_topics
                exact = rank_shots(model, sources, shot_ids, text_emb[redo], replace(settings, precision="fp32"), excluded=excluded)
                for t, ranking in zip(redo, exact.rankings):
                    outcome.rankings[t] = ranking
        else:
            outcome.rankings = [TopicRanking(r[: settings.top_k], s[: settings.top_k]) for r, s in zip(top.rows, top.scores)]
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _rescore_fp32(
    enc: _Encoder, sources: Sequence[FeatureSource], top: TopK, top_k: int, keys: np.ndarray, outcome: RankOutcome, io_threads: int,
    sample_rows: np.ndarray, sample_approx: np.ndarray,
) -> None:
    """Re-encode a growing prefix of every topic's candidates in float32 until its certificate
    holds (or every candidate is re-scored); take the exact top-k from the exact scores.

    The error behind the certificates is the largest seen on the re-scored candidates and on
    ``sample_rows`` (approximate scores ``sample_approx``, topics x samples), re-scored too."""
    n_topics = len(top.rows)
    held = [rows.size for rows in top.rows]
    step = max(16, top_k // 8)
    upto = [min(h, top_k + step) for h in held]  # the re-scored prefix of each topic's candidates
    done = np.empty(0, dtype=np.int64)  # re-scored shot rows, sorted
    exact = np.empty((n_topics, 0), dtype=np.float32)

    def read(positions: np.ndarray) -> list[torch.Tensor]:
        per_source = [[torch.empty(shape, dtype=dtype) for shape, dtype in src.buffer_shapes(positions.size)] for src in sources]
        jobs = [(src, [b.numpy() for b in bufs]) for src, bufs in zip(sources, per_source)]
        list(pool.map(lambda job: job[0].fill_positions(positions, job[1]), jobs))
        return [b.to(enc.device) for bufs in per_source for b in bufs]

    with ThreadPoolExecutor(max_workers=max(1, min(io_threads, len(sources)))) as pool:
        while True:
            wanted = np.unique(np.concatenate([sample_rows, *(rows[:u] for rows, u in zip(top.rows, upto))]))
            new = np.setdiff1d(wanted, done, assume_unique=True)
            if new.size:
                fresh = np.empty((n_topics, new.size), dtype=np.float32)
                for a in range(0, new.size, enc.batch):
                    positions = new[a : a + enc.batch]
                    fresh[:, a : a + positions.size] = enc.score(enc.embed(read(positions))).cpu().numpy()
                done = np.concatenate([done, new])
                exact = np.concatenate([exact, fresh], axis=1)
                order = np.argsort(done, kind="stable")
                done, exact = done[order], exact[:, order]
            prefix = [exact[t, np.searchsorted(done, rows[:u])].astype(np.float64) for t, (rows, u) in enumerate(zip(top.rows, upto))]
            sampled = exact[:, np.searchsorted(done, sample_rows)].astype(np.float64) - sample_approx
            err = max((float(np.max(np.abs(p - top.scores[t][: p.size]))) for t, p in enumerate(prefix) if p.size), default=0.0)
            err = max(err, float(np.max(np.abs(sampled))) if sampled.size else 0.0)
            failing = [t for t in range(n_topics) if not _certified(prefix[t], top.scores[t], held[t], top.k, top_k, err)]
            grow = [t for t in failing if upto[t] < held[t]]
            for t in grow:
                upto[t] = min(held[t], top_k + 2 * (upto[t] - top_k))
            if not grow:
                break
    outcome.rescored_shots = int(done.size)
    outcome.max_screen_error = err
    outcome.uncertified_topics = failing
    for t, (rows, u) in enumerate(zip(top.rows, upto)):
        order = scorer_sort(prefix[t].astype(np.float32), keys[rows[:u]])[:top_k]
        outcome.rankings.append(TopicRanking(rows[:u][order], prefix[t].astype(np.float32)[order]))


def _certified(exact: np.ndarray, approx: np.ndarray, held: int, capacity: int, top_k: int, err: float) -> bool:
    """Whether no shot outside the re-scored prefix (``exact``, the fp32 scores of the first
    candidates) can reach the fp32 top-k, given the largest approximation error ``err``.

    ``approx`` are the topic's held candidates (approximate scores, best first); a heap holding
    fewer than ``capacity`` saw every eligible shot."""
    if exact.size == held and held < capacity:
        return True  # every eligible shot was re-scored
    if exact.size < top_k:
        return False
    left_out = float(approx[exact.size]) if exact.size < held else float(approx[-1])
    kth = float(np.partition(exact, exact.size - top_k)[exact.size - top_k])
    return left_out + CERTIFICATE_SAFETY * err < kth
