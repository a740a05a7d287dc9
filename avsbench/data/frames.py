"""Frame-level features (``FeatureData/frame/<feat>/``): BigFile rows ``<video>_<frameNo>`` grouped per video.

The video id is everything before the last ``_``; frames are ordered by the integer frame
number and truncated to the first ``max_frame`` frames (as LAFF-ml expects).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avsbench.data.bigfile import ID_FILE, BigFile
from avsbench.errors import InputFormatError, UnknownIdError


def split_frame_id(frame_id: str) -> tuple[str, int]:
    """``"shot00008_16_3"`` -> ``("shot00008_16", 3)``; raises :class:`ValueError` if malformed."""
    video, sep, number = frame_id.rpartition("_")
    if not sep or not video or not number.isdigit():
        raise ValueError(frame_id)
    return video, int(number)


class FrameFeature:
    """Frame-level BigFile grouped per video, frames in frame-number order."""

    def __init__(self, path: str | Path, max_frame: int | None = None) -> None:
        if max_frame is not None and max_frame < 1:
            raise ValueError("max_frame must be >= 1")
        self.bigfile = BigFile(path)
        self.path = self.bigfile.path
        self.max_frame = max_frame
        frames: dict[str, list[tuple[int, int]]] = {}
        for row, frame_id in enumerate(self.bigfile.ids):
            try:
                video, number = split_frame_id(frame_id)
            except ValueError:
                raise InputFormatError(
                    f"frame id {frame_id!r} (id number {row + 1}) has no frame number",
                    path=self.path / ID_FILE,
                    expected="<video>_<frameNo>",
                ) from None
            frames.setdefault(video, []).append((number, row))
        self._rows: dict[str, np.ndarray] = {}
        for video, pairs in frames.items():
            pairs.sort()
            rows = np.fromiter((row for _, row in pairs), dtype=np.int64, count=len(pairs))
            self._rows[video] = rows[:max_frame] if max_frame is not None else rows

    @property
    def dim(self) -> int:
        return self.bigfile.dim

    @property
    def video_ids(self) -> list[str]:
        """Video ids in order of first appearance in the file."""
        return list(self._rows)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def frame_rows(self, video_id: str) -> np.ndarray:
        """BigFile row numbers of a video's frames, in frame order (after truncation)."""
        try:
            return self._rows[video_id]
        except KeyError:
            raise UnknownIdError(
                f"video {video_id!r} has no frames in this frame feature", path=self.path / ID_FILE
            ) from None

    def n_frames(self, video_id: str) -> int:
        return len(self.frame_rows(video_id))

    def read(self, video_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Padded frames of ``video_ids``: ``(n, F, dim)`` float32 and an ``(n, F)`` bool mask (True = real frame).

        F is the largest frame count among the requested videos; padding rows are zero.
        """
        unknown = [v for v in video_ids if v not in self._rows]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise UnknownIdError(
                f"{len(unknown)} video(s) have no frames in this frame feature: {shown}", path=self.path / ID_FILE
            )
        per_video = [self._rows[v] for v in video_ids]
        counts = np.array([len(r) for r in per_video], dtype=np.int64)
        n_max = int(counts.max()) if len(per_video) else 0
        out = np.zeros((len(per_video), n_max, self.dim), dtype=np.float32)
        mask = np.arange(n_max)[None, :] < counts[:, None]
        if per_video:
            values = self.bigfile.read_rows(np.concatenate(per_video))
            out[mask] = values
        return out, mask
