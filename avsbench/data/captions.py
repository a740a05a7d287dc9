"""Caption files of training collections: ``<cap_id> <caption>`` per line.

The caption id is everything before the first whitespace; the video id is the part of the
caption id before ``#`` (``video7768#14`` -> ``video7768``). Blank lines are skipped; a line
with an id only gives an empty caption. Caption ids must be unique.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from avsbench.data.atomic import atomic_write
from avsbench.errors import InputFormatError, MissingDataError

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")


def tokenize(text: str) -> list[str]:
    """The words of a caption or query, as the reference's text tool splits them: characters outside
    [A-Za-z0-9] become spaces; lower-case; split on whitespace."""
    return _NON_ALNUM.sub(" ", text).strip().lower().split()


def video_id_of(caption_id: str) -> str:
    """The video a caption belongs to: the part of its id before ``#``."""
    return caption_id.split("#", 1)[0]


@dataclass(frozen=True)
class Caption:
    """One caption: its id, its video and its text."""

    caption_id: str
    video_id: str
    text: str


@dataclass(frozen=True)
class CaptionSet:
    """The captions of a collection, in file order."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    video_ids: tuple[str, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Caption]:
        for cap_id, video, text in zip(self.ids, self.video_ids, self.texts):
            yield Caption(cap_id, video, text)

    def __getitem__(self, index: int) -> Caption:
        return Caption(self.ids[index], self.video_ids[index], self.texts[index])

    @property
    def videos(self) -> list[str]:
        """Distinct video ids in order of first appearance."""
        return list(dict.fromkeys(self.video_ids))

    @classmethod
    def read(cls, path: str | Path) -> CaptionSet:
        """Parse a caption file; malformed or duplicate ids raise :class:`InputFormatError`."""
        path = Path(path)
        if not path.is_file():
            raise MissingDataError("caption file not found", path=path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"not UTF-8 text ({exc.reason})", path=path) from None
        ids: list[str] = []
        texts: list[str] = []
        seen: set[str] = set()
        for lineno, line in enumerate(text.splitlines(), 1):
            parts = line.strip().split(None, 1)
            if not parts:
                continue
            cap_id = parts[0]
            if cap_id.startswith("#") or not video_id_of(cap_id):
                raise InputFormatError(
                    f"caption id {cap_id!r} has no video id", path=path, line=lineno, expected="<video>#<n> <caption>"
                )
            if cap_id in seen:
                raise InputFormatError(
                    f"duplicate caption id {cap_id!r}", path=path, line=lineno, expected="unique caption ids"
                )
            seen.add(cap_id)
            ids.append(cap_id)
            texts.append(parts[1] if len(parts) > 1 else "")
        return cls(tuple(ids), tuple(texts), tuple(video_id_of(i) for i in ids), str(path))

    def write(self, path: str | Path) -> None:
        """Write as ``<cap_id> <caption>`` lines (atomically)."""
        write_captions(path, self.ids, self.texts)


def write_captions(path: str | Path, ids: Sequence[str], texts: Sequence[str]) -> None:
    """Write a caption file atomically; ids must be non-empty, whitespace-free and unique."""
    if len(ids) != len(texts):
        raise InputFormatError(f"{len(ids)} caption ids but {len(texts)} texts", path=path)
    if len(set(ids)) != len(ids):
        raise InputFormatError("duplicate caption ids", path=path, expected="unique caption ids")
    with atomic_write(path, "w") as fh:
        for cap_id, caption in zip(ids, texts):
            if not cap_id or cap_id != "".join(cap_id.split()):
                raise InputFormatError(f"caption id {cap_id!r} is empty or contains whitespace", path=path)
            fh.write(f"{cap_id} {' '.join(caption.split())}\n")
