"""A collection under the data root, in the field's layout::

<root>/<name>/VideoSets/<name>.txt            shot (or video) ids, one per line
<root>/<name>/FeatureData/<feat>/             video-level BigFiles
<root>/<name>/FeatureData/frame/<feat>/       frame-level BigFiles (ids <video>_<frameNo>)
<root>/<name>/TextData/<name>.caption.txt     captions (training collections)
<root>/<name>/TextData/<feat>/                precomputed text features (caption id or topic number)
<root>/<name>/TextData/<edition>.avs.txt      topics; TextData/avs.qrels.<edition> qrels
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from avsbench.data.bigfile import ID_FILE, SHAPE_FILE, BigFile
from avsbench.data.captions import CaptionSet
from avsbench.data.frames import FrameFeature
from avsbench.data.resources import bundled_qrels, v3c1_dropped_shots
from avsbench.data.root import ROOT_ENV, SYNTHETIC_MARKER, resolve_root
from avsbench.data.topics import V3C1, YEARS, TopicSet, Year
from avsbench.errors import AvsbenchError, InputFormatError, MissingDataError, UnknownIdError

FRAME_DIR = "frame"


@dataclass(frozen=True)
class FeatureInfo:
    """What ``collection info`` shows about one feature folder; ``problem`` is set when it cannot be opened."""

    name: str
    kind: str  # "video", "frame" or "text"
    nrows: int | None
    dim: int | None
    size_bytes: int
    problem: str | None = None


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _bigfile_dirs(path: Path) -> list[str]:
    if not path.is_dir():
        return []
    return sorted(
        p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / SHAPE_FILE).exists()
    )


def qrels_location(root: Path, year: Year, collection: str | None = None) -> Path:
    """Where ``year``'s qrels are installed: ``<root>/<collection>/TextData/avs.qrels.tvNN``.

    ``collection`` defaults to the year's (iacc.3 or v3c1).
    """
    return root / (collection or year.collection) / "TextData" / year.qrels_name


def lookup_qrels(root: Path, year: Year, collection: str | None = None) -> Path | None:
    """The qrels of ``year``: installed under ``root``, else the bundled file (2021), else None.

    A generated (synthetic) collection never falls back to NIST's bundled judgments.
    """
    path = qrels_location(root, year, collection)
    if path.is_file():
        return path
    if (root / (collection or year.collection) / SYNTHETIC_MARKER).is_file():
        return None
    return bundled_qrels(year.edition)


def find_qrels(year: Year, rootpath: str | Path | None = None) -> Path:
    """The qrels of ``year`` under the data root (see :func:`lookup_qrels`); an error saying how to get them."""
    root = resolve_root(rootpath)
    path = lookup_qrels(root, year)
    if path is not None:
        return path
    target = qrels_location(root, year)
    if (root / year.collection / SYNTHETIC_MARKER).is_file():
        raise MissingDataError(
            f"the synthetic collection has no qrels for {year.key}", path=target, expected="--qrels FILE"
        )
    raise MissingDataError(
        f"no qrels for {year.key} at {target} (data root from --rootpath, ${ROOT_ENV} or ~/VisualSearch; only the 2021 "
        f"qrels ship with avsbench): `avsbench data fetch qrels --year {year.key}` installs NIST's file there, "
        f"`avsbench data add-qrels FILE --year {year.key}` a copy you have; or pass --qrels FILE"
    )


class Collection:
    """A collection folder ``<root>/<name>``; everything is read lazily."""

    def __init__(self, root: str | Path | None, name: str) -> None:
        self.root = resolve_root(root)
        self.name = name
        self.path = self.root / name
        if not self.path.is_dir():
            raise MissingDataError(
                f"collection {name!r} not found under the data root {self.root}",
                path=self.path,
                expected=f"<root>/{name}/ with VideoSets/{name}.txt and "
                "FeatureData/<feature>/{feature.bin,id.txt,shape.txt}; "
                f"the root is --rootpath, else ${ROOT_ENV}, else ~/VisualSearch",
            )

    def __repr__(self) -> str:
        return f"Collection({str(self.root)!r}, {self.name!r})"

    @property
    def shot_list_path(self) -> Path:
        return self.path / "VideoSets" / f"{self.name}.txt"

    @property
    def is_synthetic(self) -> bool:
        """True for generated (demo) collections, which carry a SYNTHETIC.md."""
        return (self.path / SYNTHETIC_MARKER).is_file()

    @cached_property
    def shots(self) -> list[str]:
        """The shot (or video) ids of ``VideoSets/<name>.txt`` in file order."""
        path = self.shot_list_path
        if not path.is_file():
            raise MissingDataError(
                "shot list not found", path=path, expected="VideoSets/<collection>.txt with one id per line"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"not UTF-8 text ({exc.reason})", path=path) from None
        shots: list[str] = []
        seen: set[str] = set()
        for lineno, line in enumerate(text.splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 1:
                raise InputFormatError("more than one field", path=path, line=lineno, expected="one shot id per line")
            if parts[0] in seen:
                raise InputFormatError(
                    f"duplicate shot id {parts[0]!r}", path=path, line=lineno, expected="unique shot ids"
                )
            seen.add(parts[0])
            shots.append(parts[0])
        return shots

    @property
    def dropped_shots(self) -> frozenset[str]:
        """Shots NIST dropped from the collection (V3C1 only); never to be returned by a run."""
        return v3c1_dropped_shots() if self.name == V3C1 else frozenset()

    @property
    def searchable_shots(self) -> list[str]:
        """The shot list without the dropped shots."""
        dropped = self.dropped_shots
        return [s for s in self.shots if s not in dropped] if dropped else list(self.shots)

    # -- features -------------------------------------------------------------------------
    @property
    def feature_dir(self) -> Path:
        return self.path / "FeatureData"

    def feature_names(self) -> list[str]:
        """Video-level features (folders under FeatureData/ with a shape.txt)."""
        return _bigfile_dirs(self.feature_dir)

    def frame_feature_names(self) -> list[str]:
        """Frame-level features (folders under FeatureData/frame/)."""
        return _bigfile_dirs(self.feature_dir / FRAME_DIR)

    def feature(self, name: str) -> BigFile:
        """Open a video-level feature."""
        path = self.feature_dir / name
        if not path.is_dir():
            known = ", ".join(self.feature_names()) or "none"
            raise MissingDataError(
                f"feature {name!r} not found in collection {self.name} (available: {known})", path=path
            )
        return BigFile(path)

    def frame_feature(self, name: str, max_frame: int | None = None) -> FrameFeature:
        """Open a frame-level feature grouped per video."""
        path = self.feature_dir / FRAME_DIR / name
        if not path.is_dir():
            known = ", ".join(self.frame_feature_names()) or "none"
            raise MissingDataError(
                f"frame feature {name!r} not found in collection {self.name} (available: {known})", path=path
            )
        return FrameFeature(path, max_frame=max_frame)

    def check_feature_covers_shots(self, feature: BigFile | FrameFeature) -> None:
        """Raise :class:`UnknownIdError` if some searchable shots have no row in ``feature``."""
        have = feature.row_of if isinstance(feature, BigFile) else feature
        missing = [s for s in self.searchable_shots if s not in have]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise UnknownIdError(
                f"{len(missing)} of {len(self.searchable_shots)} shots of {self.shot_list_path.name} "
                f"have no feature: {shown}",
                path=feature.path / ID_FILE,
                expected="a row for every shot of the collection",
            )

    # -- text side ------------------------------------------------------------------------
    @property
    def text_dir(self) -> Path:
        return self.path / "TextData"

    @property
    def caption_path(self) -> Path:
        return self.text_dir / f"{self.name}.caption.txt"

    def has_captions(self) -> bool:
        return self.caption_path.is_file()

    def captions(self) -> CaptionSet:
        """The captions of ``TextData/<name>.caption.txt``."""
        return CaptionSet.read(self.caption_path)

    def text_feature_names(self) -> list[str]:
        """Precomputed text features (folders under TextData/ with a shape.txt)."""
        return _bigfile_dirs(self.text_dir)

    def text_feature(self, name: str) -> BigFile:
        """A precomputed text feature, keyed by caption id or plain topic number."""
        path = self.text_dir / name
        if not path.is_dir():
            known = ", ".join(self.text_feature_names()) or "none"
            raise MissingDataError(
                f"text feature {name!r} not found in collection {self.name} (available: {known})", path=path
            )
        return BigFile(path)

    def years(self) -> list[Year]:
        """The AVS evaluations run on this collection (by the year registry)."""
        return [y for y in YEARS.values() if y.collection == self.name]

    def topic_path(self, year: Year) -> Path | None:
        """``TextData/<topic file>`` of ``year`` if the collection has it."""
        path = self.text_dir / year.topic_file
        return path if path.is_file() else None

    def topics(self, year: Year) -> TopicSet:
        """The collection's topic file for ``year``, else the bundled one."""
        path = self.topic_path(year)
        return TopicSet.read(path, name=year.edition) if path else year.topics()

    def qrels_path(self, year: Year) -> Path | None:
        """``TextData/avs.qrels.<edition>``, else (for a real, non-synthetic collection) the bundled qrels."""
        return lookup_qrels(self.root, year, self.name)

    def manifest(self) -> dict | None:
        """The generator's manifest.json of a synthetic collection (next to it or one level up)."""
        for path in (self.path / "manifest.json", self.root / "manifest.json"):
            if path.is_file():
                try:
                    return json.loads(path.read_text(encoding="utf-8"))
                except json.JSONDecodeError as exc:
                    raise InputFormatError(f"not valid JSON ({exc.msg})", path=path, line=exc.lineno) from None
        return None

    def feature_infos(self) -> list[FeatureInfo]:
        """Every video, frame and text feature with its shape and size; problems recorded, not raised."""
        infos: list[FeatureInfo] = []
        groups = (
            ("video", self.feature_dir, self.feature_names()),
            ("frame", self.feature_dir / FRAME_DIR, self.frame_feature_names()),
            ("text", self.text_dir, self.text_feature_names()),
        )
        for kind, base, names in groups:
            for name in names:
                path = base / name
                try:
                    bf = BigFile(path)
                    infos.append(FeatureInfo(name, kind, bf.nrows, bf.dim, _folder_size(path)))
                except AvsbenchError as exc:
                    infos.append(FeatureInfo(name, kind, None, None, _folder_size(path), str(exc)))
        return infos


@dataclass(frozen=True)
class QrelsSummary:
    """Pool statistics of one qrels file, as sample_eval sees them."""

    edition: str
    path: str
    topics: int
    pool_size_mean: float
    estimated_relevant: tuple[float, float, float]  # min, median, max over topics
    strata: tuple[tuple[str, int, int, int], ...]  # (stratum, pooled, sampled, judged relevant), summed over topics


@dataclass(frozen=True)
class CollectionSummary:
    """Everything ``avsbench collection info`` shows; problems are listed, not raised."""

    name: str
    path: str
    synthetic: bool
    shots: int | None
    dropped_in_list: int
    features: tuple[FeatureInfo, ...]
    captions: int | None
    caption_videos: int | None
    topic_files: tuple[tuple[str, str, int], ...]  # (edition, path, topics)
    qrels: tuple[QrelsSummary, ...]
    manifest: dict | None
    problems: tuple[str, ...]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def summarize_qrels(edition: str, path: Path) -> QrelsSummary:
    """Read a qrels file and sum its per-stratum pool statistics over topics."""
    from avsbench.data.qrels import Qrels

    qrels = Qrels.read(path)
    pooled: dict[str, list[int]] = {}
    estimates: list[float] = []
    pool_sizes: list[int] = []
    for topic_id in qrels.topic_ids:
        topic = qrels[topic_id]
        estimates.append(topic.estimated_relevant)
        pool_sizes.append(sum(topic.pool_size.values()))
        for stratum, size in topic.pool_size.items():
            totals = pooled.setdefault(stratum, [0, 0, 0])
            totals[0] += size
            totals[1] += topic.sampled.get(stratum, 0)
            totals[2] += topic.relevant.get(stratum, 0)
    return QrelsSummary(
        edition,
        str(path),
        len(estimates),
        sum(pool_sizes) / max(1, len(pool_sizes)),
        (min(estimates, default=0.0), _median(estimates) if estimates else 0.0, max(estimates, default=0.0)),
        tuple((s, pooled[s][0], pooled[s][1], pooled[s][2]) for s in sorted(pooled)),
    )


def _summarize_shots(collection: Collection, problems: list[str]) -> tuple[int | None, int]:
    """Shot count and how many of them the dropped-shots list names."""
    try:
        shots = collection.shots
        return len(shots), len(collection.dropped_shots.intersection(shots))
    except AvsbenchError as exc:
        problems.append(str(exc))
        return None, 0


def _summarize_features(collection: Collection, shots: int | None, problems: list[str]) -> tuple[FeatureInfo, ...]:
    """Every feature's shape; video and frame features must cover the shot list."""
    features = tuple(collection.feature_infos())
    for info in features:
        if info.problem:
            problems.append(f"{info.kind} feature {info.name}: {info.problem}")
        elif shots is not None and info.kind in ("video", "frame"):
            try:
                feature = collection.feature(info.name) if info.kind == "video" else collection.frame_feature(info.name)
                collection.check_feature_covers_shots(feature)
            except AvsbenchError as exc:
                problems.append(f"{info.kind} feature {info.name}: {exc}")
    if not features:
        problems.append(f"no features under {collection.feature_dir}")
    return features


def _summarize_captions(collection: Collection, problems: list[str]) -> tuple[int | None, int | None]:
    """Caption and captioned-video counts of a training collection (None when it has no captions)."""
    if not collection.has_captions():
        return None, None
    try:
        caption_set = collection.captions()
        return len(caption_set), len(caption_set.videos)
    except AvsbenchError as exc:
        problems.append(str(exc))
        return None, None


def _summarize_years(
    collection: Collection, problems: list[str]
) -> tuple[list[tuple[str, str, int]], list[QrelsSummary]]:
    """The collection's own topic files and the qrels found for each of its years."""
    topic_files: list[tuple[str, str, int]] = []
    qrels: list[QrelsSummary] = []
    for year in collection.years():
        path = collection.topic_path(year)
        if path is not None:
            try:
                topic_files.append((year.edition, str(path), len(TopicSet.read(path, name=year.edition))))
            except AvsbenchError as exc:
                problems.append(str(exc))
        qrels_path = collection.qrels_path(year)
        if qrels_path is not None:
            try:
                qrels.append(summarize_qrels(year.edition, qrels_path))
            except AvsbenchError as exc:
                problems.append(str(exc))
    return topic_files, qrels


def summarize(collection: Collection) -> CollectionSummary:
    """Gather shots, features, captions, topics, qrels and problems of a collection."""
    problems: list[str] = []
    shots, dropped_in_list = _summarize_shots(collection, problems)
    features = _summarize_features(collection, shots, problems)
    captions, caption_videos = _summarize_captions(collection, problems)
    topic_files, qrels = _summarize_years(collection, problems)
    manifest = None
    if collection.is_synthetic:
        try:
            manifest = collection.manifest()
        except AvsbenchError as exc:
            problems.append(str(exc))
    return CollectionSummary(
        collection.name,
        str(collection.path),
        collection.is_synthetic,
        shots,
        dropped_in_list,
        features,
        captions,
        caption_videos,
        tuple(topic_files),
        tuple(qrels),
        manifest,
        tuple(problems),
    )
