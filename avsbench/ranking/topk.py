"""Per-topic running top-k in the scorer's order: score descending, then shot id descending.

The order never depends on ``topk``/``argsort`` tie handling: a chunk contributes every
entry whose score is >= the current boundary (ties at the boundary included), and the merge
sorts by (score, byte rank of the shot id) explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch  # only push_chunk needs torch: the synthetic generator uses TopK without it


def shot_id_keys(shot_ids: Sequence[str]) -> np.ndarray:
    """Rank of each shot id in byte order (int64): larger key = later in byte order."""
    try:
        as_bytes = np.array(shot_ids, dtype=np.bytes_)  # ASCII ids (every real collection): fast path
    except UnicodeEncodeError:
        as_bytes = np.array([s.encode() for s in shot_ids], dtype=np.bytes_)
    order = np.argsort(as_bytes, kind="stable")
    keys = np.empty(len(shot_ids), dtype=np.int64)
    keys[order] = np.arange(len(shot_ids), dtype=np.int64)
    return keys


def scorer_sort(scores: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions that sort (scores, keys) by score descending, then key descending."""
    return np.lexsort((keys, scores))[::-1]


class TopK:
    """Running top-``k`` of every topic over a stream of score chunks."""

    def __init__(self, n_topics: int, k: int, shot_keys: np.ndarray) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        self.k = k
        self.shot_keys = shot_keys
        self.rows: list[np.ndarray] = [np.empty(0, dtype=np.int64) for _ in range(n_topics)]
        self.scores: list[np.ndarray] = [np.empty(0, dtype=np.float32) for _ in range(n_topics)]

    def boundary(self) -> np.ndarray:
        """Per topic, the lowest score that can still enter (-inf until k entries are held)."""
        return np.array([s[-1] if len(s) >= self.k else -np.inf for s in self.scores], dtype=np.float32)

    def push(self, topic: int, rows: np.ndarray, scores: np.ndarray) -> None:
        """Merge candidates (global shot rows and their finite scores) into one topic's top-k."""
        if rows.size == 0:
            return
        all_rows = np.concatenate([self.rows[topic], rows])
        all_scores = np.concatenate([self.scores[topic], scores.astype(np.float32, copy=False)])
        keep = scorer_sort(all_scores, self.shot_keys[all_rows])[: self.k]
        self.rows[topic] = all_rows[keep]
        self.scores[topic] = all_scores[keep]

    def push_chunk(self, scores: torch.Tensor, first_row: int) -> None:
        """Merge a (topics, n) score block whose columns are shot rows first_row..first_row+n-1.

        Columns holding -inf (excluded shots) never enter; NaN must have been rejected before.
        """
        import torch

        n = scores.shape[1]
        if n == 0:
            return
        kk = min(self.k, n)
        chunk_kth = torch.topk(scores, kk, dim=1, sorted=False).values.min(dim=1).values
        boundary = torch.from_numpy(self.boundary()).to(scores.device)
        threshold = torch.maximum(chunk_kth, boundary)
        mask = (scores >= threshold[:, None]) & torch.isfinite(scores)
        topic_idx, col_idx = mask.nonzero(as_tuple=True)
        values = scores[topic_idx, col_idx].float().cpu().numpy()
        topics = topic_idx.cpu().numpy()
        rows = col_idx.cpu().numpy().astype(np.int64) + first_row
        if topics.size == 0:
            return
        bounds = np.searchsorted(topics, np.arange(len(self.rows) + 1))
        for t in range(len(self.rows)):
            lo, hi = bounds[t], bounds[t + 1]
            if hi > lo:
                self.push(t, rows[lo:hi], values[lo:hi])
