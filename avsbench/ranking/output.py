"""What ``avsbench rank`` writes: TREC run files and their JSON provenance sidecars.

Score column: the engine's float32 score, written with 10 decimals, kept strictly decreasing
with rank (see :func:`avsbench.data.runs.strictly_decreasing_scores`), so the scorer's own
order (by score) is exactly our order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avsbench.data.atomic import atomic_write, atomic_write_text
from avsbench.data.runs import strictly_decreasing_scores
from avsbench.data.topics import qrels_topic_id

PROVENANCE_SUFFIX = ".provenance.json"


def write_trec_run(path: str | Path, topics: Sequence[int], rankings: Sequence[tuple[Sequence[str], np.ndarray]], tag: str) -> Path:
    """Write one TREC run atomically: per topic (plain number) its shots (best first) and scores."""
    with atomic_write(path) as fh:
        for number, (shots, scores) in zip(topics, rankings):
            topic_id = qrels_topic_id(number)
            for rank, (shot, text) in enumerate(zip(shots, strictly_decreasing_scores(scores)), 1):
                fh.write(f"{topic_id} 0 {shot} {rank} {text} {tag}\n")
    return Path(path)


def provenance_path(run_path: str | Path) -> Path:
    """The sidecar of a run file: ``<run file>.provenance.json``."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + PROVENANCE_SUFFIX)


def write_provenance(run_path: str | Path, record: dict) -> Path:
    """Write the sidecar of ``run_path`` atomically."""
    path = provenance_path(run_path)
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=False) + "\n")
    return path


def read_provenance(run_path: str | Path) -> dict | None:
    """The sidecar of a run file, or None when it has none (or it is unreadable)."""
    path = provenance_path(run_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
