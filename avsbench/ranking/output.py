"""What ``avsbench rank`` writes: TREC run files and their JSON provenance sidecars.

Score column: the engine's float32 score, written with 10 decimals, kept strictly decreasing
with rank (see :func:`avsbench.data.runs.strictly_decreasing_scores`), so the scorer's own
order (by score) is exactly our order.

A run and its sidecar are tied: the sidecar, written after the run, records the run file's size
and SHA-256, and :func:`read_provenance` refuses a sidecar that does not describe the run file
beside it (a rank cut short between the two writes, or a run edited since), so that ``submit``
never takes the elapsed time of another run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avsbench.data.atomic import atomic_write, atomic_write_text, file_record
from avsbench.data.runs import strictly_decreasing_scores
from avsbench.data.topics import qrels_topic_id
from avsbench.errors import InputFormatError

PROVENANCE_SUFFIX = ".provenance.json"


def write_trec_run(
    path: str | Path, topics: Sequence[int], rankings: Sequence[tuple[Sequence[str], np.ndarray]], tag: str
) -> Path:
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
    """Write the sidecar of ``run_path`` atomically, after the run: it records the run file's size and SHA-256."""
    path = provenance_path(run_path)
    tied = {**record, "run": {**record.get("run", {}), **file_record(run_path)}}
    atomic_write_text(path, json.dumps(tied, indent=1, sort_keys=False) + "\n")
    return path


def read_provenance(run_path: str | Path) -> dict | None:
    """The sidecar of a run file, None when it has none; an error when it does not describe this run file."""
    path = provenance_path(run_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InputFormatError("provenance sidecar is not readable JSON", path=path) from None
    run = data.get("run") if isinstance(data, dict) else None
    if not isinstance(run, dict) or "sha256" not in run or "size" not in run:
        raise InputFormatError(
            "provenance sidecar has no checksum of its run file (written by an older avsbench)",
            path=path,
            expected="a sidecar written by this version of rank, or --elapsed-time SECONDS",
        )
    found = file_record(run_path)
    if found["size"] != run["size"] or found["sha256"] != run["sha256"]:
        raise InputFormatError(
            f"provenance sidecar does not describe {Path(run_path).name} (written for another version of it: "
            "a rank cut short, or the run changed since)",
            path=path,
            expected="rank again, or give --elapsed-time SECONDS",
        )
    return data
