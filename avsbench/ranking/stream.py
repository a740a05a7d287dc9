"""Stream BigFile rows aligned on a collection's shot list, in large chunks, with read-ahead.

Contiguous row ranges are copied from a read-only memory mapping into preallocated buffers
(pinned on CUDA) by several threads, then the mapping's pages of that range are dropped again
(``MADV_DONTNEED``): they stay in the page cache but stop counting as resident memory of the
process, so peak RSS is the buffers plus the model, whatever the collection size. (A user-space
copy from the mapping measured 15 GB/s on an H200 host against 6.6 GB/s for ``os.preadv`` into
pinned memory.) When a feature file's row order differs from the shot list, each chunk's rows
are gathered in ascending file order with ``os.preadv`` (runs of consecutive rows are one read).
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from avsbench.data.bigfile import BigFile
from avsbench.data.frames import FrameFeature
from avsbench.errors import InputFormatError

ROW_BYTES = 4  # float32


class FeatureSource:
    """One BigFile's rows, addressed by position in the collection's shot list."""

    def __init__(self, name: str, bigfile: BigFile, shot_ids: Sequence[str]) -> None:
        self.name = name
        self.dim = bigfile.dim
        self.path = bigfile.feature_path
        self.file_rows: np.ndarray | None = None
        if bigfile.ids != list(shot_ids):
            self.file_rows = bigfile.index_of(shot_ids)  # raises UnknownIdError for shots it lacks
        self._fd = os.open(self.path, os.O_RDONLY)
        self._map: mmap.mmap | None = None
        self._rows: np.ndarray | None = None  # (file rows, dim) view of the mapping

    @property
    def aligned(self) -> bool:
        """True when the file's rows are the shot list in order (contiguous reads)."""
        return self.file_rows is None

    def _mapped_rows(self) -> tuple[mmap.mmap, np.ndarray]:
        """The read-only mapping of the feature file and its (file rows, dim) view, made on first use."""
        if self._map is None or self._rows is None:
            self._map = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
            self._rows = np.frombuffer(self._map, dtype="<f4").reshape(-1, self.dim)
        return self._map, self._rows

    @property
    def input_names(self) -> list[str]:
        """The model inputs this source fills (one buffer each)."""
        return [self.name]

    def buffer_shapes(self, rows: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of each buffer for ``rows`` shots."""
        return [((rows, self.dim), torch.float32)]

    def file_row(self, position: int, frame: int = 0) -> int:
        """The feature-file row holding shot-list ``position`` (``frame``: for frame-level sources)."""
        return position if self.file_rows is None else int(self.file_rows[position])

    def fill(self, start: int, stop: int, outs: Sequence[np.ndarray]) -> None:
        """Fill the buffers with shot-list positions start..stop-1."""
        self.read_range(start, stop, outs[0])

    def fill_positions(self, positions: np.ndarray, outs: Sequence[np.ndarray]) -> None:
        """Fill the buffers with arbitrary shot-list positions, in the order given."""
        self.read_positions(positions, outs[0])

    def close(self) -> None:
        self._rows = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _copy_range(self, out: np.ndarray, first_file_row: int) -> None:
        """Copy file rows first_file_row.. into ``out`` from the mapping, then drop those pages
        from the process (they stay in the page cache)."""
        n = out.shape[0]
        if n == 0:
            return
        mapping, rows = self._mapped_rows()
        if first_file_row + n > rows.shape[0]:
            raise InputFormatError("feature file ended early (truncated while reading?)", path=self.path)
        np.copyto(out, rows[first_file_row : first_file_row + n])
        row_bytes = self.dim * ROW_BYTES
        lo = first_file_row * row_bytes // mmap.PAGESIZE * mmap.PAGESIZE
        hi = min(len(mapping), (first_file_row + n) * row_bytes)
        if hasattr(mmap, "MADV_DONTNEED") and hi > lo:
            mapping.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def _pread(self, out: np.ndarray, first_file_row: int) -> None:
        view = memoryview(out.data).cast("B")
        offset = first_file_row * self.dim * ROW_BYTES
        while len(view):
            n = os.preadv(self._fd, [view], offset)
            if n <= 0:
                raise InputFormatError("feature file ended early (truncated while reading?)", path=self.path)
            view = view[n:]
            offset += n

    def read_range(self, start: int, stop: int, out: np.ndarray) -> None:
        """Rows of shot-list positions start..stop-1 into ``out`` (C-contiguous (stop-start, dim) float32)."""
        if self.file_rows is None:
            self._copy_range(out, start)
        else:
            self.read_file_rows(self.file_rows[start:stop], out)

    def read_positions(self, positions: np.ndarray, out: np.ndarray) -> None:
        """Rows of arbitrary shot-list positions, in the order given."""
        file_rows = positions if self.file_rows is None else self.file_rows[positions]
        self.read_file_rows(file_rows, out)

    def read_file_rows(self, file_rows: np.ndarray, out: np.ndarray) -> None:
        """File rows in the order given, read in ascending order with one read per run of consecutive rows."""
        if file_rows.size == 0:
            return
        order = np.argsort(file_rows, kind="stable")
        sorted_rows = file_rows[order]
        scratch = np.empty((file_rows.size, self.dim), dtype=np.float32)
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        starts = np.concatenate([[0], breaks])
        stops = np.concatenate([breaks, [sorted_rows.size]])
        for a, b in zip(starts.tolist(), stops.tolist()):
            self._pread(scratch[a:b], int(sorted_rows[a]))
        out[order] = scratch


class FrameSource(FeatureSource):
    """A frame-level feature (LAFF-ml): per shot its first ``max_frames`` frames, zero-padded to
    exactly ``max_frames`` (fixed shapes keep float32 results independent of batching), and a
    mask (True = real frame). The per-shot frame rows are held as one int64 index (CSR)."""

    def __init__(self, name: str, frames: FrameFeature, shot_ids: Sequence[str], max_frames: int) -> None:
        self.name = name
        self.dim = frames.dim
        self.path = frames.bigfile.feature_path
        self.max_frames = max_frames
        missing = [s for s in shot_ids if s not in frames]
        if missing:
            frames.frame_rows(missing[0])  # raises UnknownIdError naming the file
        per_shot = [frames.frame_rows(s)[:max_frames] for s in shot_ids]
        self.counts = np.fromiter((len(r) for r in per_shot), dtype=np.int64, count=len(per_shot))
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.frame_rows = np.concatenate(per_shot) if per_shot else np.empty(0, dtype=np.int64)
        self.file_rows = None
        self._fd = os.open(self.path, os.O_RDONLY)
        self._map = None
        self._rows = None

    @property
    def aligned(self) -> bool:
        return False

    @property
    def input_names(self) -> list[str]:
        return [self.name, self.name + ".mask"]

    def buffer_shapes(self, rows: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
        return [((rows, self.max_frames, self.dim), torch.float32), ((rows, self.max_frames), torch.bool)]

    def file_row(self, position: int, frame: int = 0) -> int:
        return int(self.frame_rows[self.offsets[position] + frame])

    def fill_positions(self, positions: np.ndarray, outs: Sequence[np.ndarray]) -> None:
        frames_out, mask_out = outs
        counts = self.counts[positions]
        mask = np.arange(self.max_frames)[None, :] < counts[:, None]
        rows = (
            np.concatenate([self.frame_rows[self.offsets[p] : self.offsets[p + 1]] for p in positions.tolist()])
            if len(positions)
            else np.empty(0, dtype=np.int64)
        )
        values = np.empty((rows.size, self.dim), dtype=np.float32)
        self.read_file_rows(rows, values)
        frames_out[...] = 0.0
        frames_out[mask] = values
        mask_out[...] = mask

    def fill(self, start: int, stop: int, outs: Sequence[np.ndarray]) -> None:
        self.fill_positions(np.arange(start, stop), outs)


@dataclass
class Chunk:
    """One block of shot-list positions start..stop-1 and its buffers (every source's, in order)."""

    start: int
    stop: int
    buffers: list[torch.Tensor]
    slot: int


class ChunkReader:
    """Read chunks ahead in a background thread into a small pool of reusable buffers.

    Iterate to get :class:`Chunk` objects; call :meth:`release` with the chunk (and, on CUDA,
    an event recorded after the host-to-device copy) once its buffers may be refilled.
    """

    def __init__(
        self,
        sources: Sequence[FeatureSource],
        n_rows: int,
        chunk_rows: int,
        *,
        slots: int = 2,
        pin_memory: bool = False,
        io_threads: int = 1,
    ) -> None:
        self.sources = list(sources)
        self.n_rows = n_rows
        self.chunk_rows = chunk_rows
        self._buffers = [
            [
                [torch.empty(shape, dtype=dtype, pin_memory=pin_memory) for shape, dtype in s.buffer_shapes(chunk_rows)]
                for s in self.sources
            ]
            for _ in range(slots)
        ]
        self._events: list[torch.cuda.Event | None] = [None] * slots
        self._free: queue.Queue[int] = queue.Queue()
        for i in range(slots):
            self._free.put(i)
        self._ready: queue.Queue[Chunk | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self.io_threads = max(1, io_threads)
        self._pool = ThreadPoolExecutor(max_workers=self.io_threads) if self.io_threads > 1 else None
        self._thread = threading.Thread(target=self._produce, name="avsbench-reader", daemon=True)
        self._thread.start()

    def _fill(self, slot: int, start: int, stop: int) -> None:
        n = stop - start
        jobs = []
        for src, bufs in zip(self.sources, self._buffers[slot]):
            outs = [b[:n].numpy() for b in bufs]
            if self._pool is None or not src.aligned:
                jobs.append((src, start, stop, outs))
            else:  # split contiguous reads so several threads copy from the page cache at once
                step = max(1024, -(-n // self.io_threads))
                jobs += [
                    (src, start + a, min(start + a + step, stop), [o[a : a + step] for o in outs])
                    for a in range(0, n, step)
                ]
        if self._pool is None:
            for src, a, b, outs in jobs:
                src.fill(a, b, outs)
        else:
            for f in [self._pool.submit(src.fill, a, b, outs) for src, a, b, outs in jobs]:
                f.result()

    def _produce(self) -> None:
        try:
            for start in range(0, self.n_rows, self.chunk_rows):
                slot = self._free.get()
                if self._stop.is_set() or slot < 0:
                    return
                event = self._events[slot]
                if event is not None:
                    event.synchronize()  # the previous host-to-device copy from this slot is done
                stop = min(start + self.chunk_rows, self.n_rows)
                self._fill(slot, start, stop)
                self._ready.put(
                    Chunk(start, stop, [b[: stop - start] for bufs in self._buffers[slot] for b in bufs], slot)
                )
            self._ready.put(None)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._ready.put(exc)

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self._ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def release(self, chunk: Chunk, event: torch.cuda.Event | None = None) -> None:
        """Give the chunk's buffers back for refilling (after ``event``, if any, has completed)."""
        self._events[chunk.slot] = event
        self._free.put(chunk.slot)

    def close(self) -> None:
        self._stop.set()
        self._free.put(-1)
        self._thread.join(timeout=60)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
