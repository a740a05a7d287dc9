"""Files bundled with the package (topics, the 2021 qrels, two real 2021 runs, dropped shots)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a bundled file under ``avsbench/resources``."""
    base = resources.files("avsbench") / "resources"
    for part in parts:
        base = base / part
    return Path(str(base))


def bundled_topic_file(name: str) -> Path:
    """Path of a bundled topic file, e.g. ``tv19.avs.txt``."""
    return resource_path("topics", name)


def bundled_qrels(edition: str) -> Path | None:
    """Path of the bundled qrels for an edition (``tv21``), or None when not shipped."""
    path = resource_path("qrels", f"avs.qrels.{edition}")
    return path if path.is_file() else None


def bundled_runs() -> list[Path]:
    """The two real public TRECVID 2021 runs."""
    return [resource_path("runs", "test_run.tv21.RUCMM.txt"), resource_path("runs", "test_run.tv21.GodSpeed.txt")]


def v3c1_dropped_shots() -> frozenset[str]:
    """The V3C1 shots NIST dropped from the collection (never to be returned)."""
    text = resource_path("shots", "V3C1.dropped.shots.list").read_text(encoding="utf-8")
    return frozenset(text.split())
