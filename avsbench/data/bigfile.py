"""BigFile: the field's on-disk feature format, read through ``numpy.memmap``.

A BigFile is a folder with three files:

* ``shape.txt``: one line ``"<N> <D>"``;
* ``id.txt``: the N row ids, newline- or space-separated, unique;
* ``feature.bin``: N x D float32, little-endian, row-major, no header (row i = id i).

Unlike the reference reader, :meth:`BigFile.read` returns rows in the order asked and raises
on unknown ids instead of dropping them. Writes go to a temporary folder that is renamed into
place, so a crash never leaves a half-written BigFile under the final name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from io import BufferedWriter
from pathlib import Path
from types import TracebackType

import numpy as np

from avsbench.data.atomic import naming_os_errors, new_staging_folder, recover_folder, swap_in
from avsbench.errors import InputFormatError, MissingDataError, UnknownIdError

DTYPE = np.dtype("<f4")
FEATURE_FILE = "feature.bin"
ID_FILE = "id.txt"
SHAPE_FILE = "shape.txt"
CHUNK_BYTES = 32 * 1024 * 1024
GATHER_BLOCK_ROWS = 2048
SHAPE_LAYOUT = 'one line "<N> <D>", two non-negative integers'
MAX_SHAPE_BYTES = 256
MAX_DIM = 1 << 17  # far above any AVS feature; a larger D is a corrupt shape.txt (and would size buffers)
MAX_ID_BYTES = 1024  # id.txt larger than this per id (shape.txt's N) is refused unread
MAX_TEXT_LINE_BYTES = 64 * MAX_DIM  # a text feature line: an id and at most MAX_DIM numbers
FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_shape(path: Path) -> tuple[int, int]:
    """Parse ``shape.txt`` ("N D") of the BigFile folder ``path``; at most :data:`MAX_SHAPE_BYTES`
    are read and D is bounded by :data:`MAX_DIM`, so a hostile file cannot make anyone allocate."""
    shape_path = path / SHAPE_FILE
    if not shape_path.is_file():
        raise MissingDataError("BigFile shape file not found", path=shape_path)
    with open(shape_path, "rb") as fh:
        data = fh.read(MAX_SHAPE_BYTES + 1)
    if len(data) > MAX_SHAPE_BYTES:
        raise InputFormatError(
            f"shape file is over {MAX_SHAPE_BYTES} bytes", path=shape_path, line=1, expected=SHAPE_LAYOUT
        )
    text = data.decode("ascii", errors="replace")
    parts = text.split()
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts):
        shown = text.strip()[:40]
        raise InputFormatError(f"malformed shape {shown!r}", path=shape_path, line=1, expected=SHAPE_LAYOUT)
    nrows, dim = int(parts[0]), int(parts[1])
    if not 1 <= dim <= MAX_DIM:
        raise InputFormatError(f"feature dimension {dim}", path=shape_path, line=1, expected=f"1 <= D <= {MAX_DIM}")
    return nrows, dim


def read_ids(path: Path, nrows: int) -> list[str]:
    """Parse ``id.txt`` of the BigFile folder ``path``: ``nrows`` unique ids, one per line or
    whitespace-separated (errors name the line when the ids are one per line). A file larger than
    :data:`MAX_ID_BYTES` per id is refused before it is read."""
    id_path = path / ID_FILE
    if not id_path.is_file():
        raise MissingDataError("BigFile id file not found", path=id_path)
    size = id_path.stat().st_size
    if size > nrows * (MAX_ID_BYTES + 1) + MAX_ID_BYTES:
        raise InputFormatError(
            f"{size:,} bytes for {nrows:,} ids",
            path=id_path,
            expected=f"at most {MAX_ID_BYTES} bytes per id (shape.txt says {nrows} rows)",
        )
    data = id_path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFormatError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=id_path, line=line) from None
    numbered = [(lineno, stripped) for lineno, line in enumerate(text.splitlines(), 1) if (stripped := line.strip())]
    one_per_line = all(len(name.split()) == 1 for _, name in numbered)
    ids = [name for _, name in numbered] if one_per_line else text.split()
    if len(ids) != nrows:
        raise InputFormatError(
            f"{len(ids)} ids but shape.txt says {nrows} rows",
            path=id_path,
            expected=f"{nrows} ids, one per line or space-separated",
        )
    if len(set(ids)) != nrows:
        _raise_duplicate(ids, [lineno for lineno, _ in numbered] if one_per_line else None, id_path)
    return ids


def _raise_duplicate(ids: list[str], lines: list[int] | None, id_path: Path) -> None:
    """Raise naming the first repeated id and where it is (line, or id number when not one per line)."""
    first: dict[str, int] = {}
    for i, name in enumerate(ids):
        if name in first:
            if lines is None:
                raise InputFormatError(
                    f"duplicate id {name!r} (id number {i + 1}, first {first[name] + 1})",
                    path=id_path,
                    expected="unique ids",
                )
            raise InputFormatError(
                f"duplicate id {name!r} (first on line {lines[first[name]]})",
                path=id_path,
                line=lines[i],
                expected="unique ids",
            )
        first[name] = i


class BigFile:
    """A read-only BigFile opened through ``numpy.memmap``; validated on open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        recover_folder(self.path)  # a replacement cut short by a crash: back to the old folder
        if not self.path.is_dir():
            raise MissingDataError(
                "BigFile folder not found", path=self.path, expected="a folder with feature.bin, id.txt, shape.txt"
            )
        self.nrows, self.dim = read_shape(self.path)
        self.feature_path = self.path / FEATURE_FILE
        if not self.feature_path.is_file():
            raise MissingDataError("BigFile feature file not found", path=self.feature_path)
        expected_size = self.nrows * self.dim * DTYPE.itemsize
        actual_size = self.feature_path.stat().st_size
        if actual_size != expected_size:  # before reading id.txt: N is then bounded by a real file's size
            raise InputFormatError(
                f"size is {actual_size} bytes but shape.txt says {self.nrows} x {self.dim} float32, "
                f"which needs {expected_size}" + (" (truncated?)" if actual_size < expected_size else ""),
                path=self.feature_path,
                expected="N*D*4 bytes",
            )
        self.ids: list[str] = read_ids(self.path, self.nrows)
        self._row_of: dict[str, int] | None = None
        self._data: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nrows, self.dim)

    @property
    def nbytes(self) -> int:
        return self.nrows * self.dim * DTYPE.itemsize

    @property
    def data(self) -> np.ndarray:
        """The whole matrix as a read-only memmap (nothing is read until it is indexed)."""
        if self._data is None:
            if self.nrows == 0:
                self._data = np.empty((0, self.dim), dtype=DTYPE)
            else:
                self._data = np.memmap(self.feature_path, dtype=DTYPE, mode="r", shape=(self.nrows, self.dim))
        return self._data

    @property
    def row_of(self) -> dict[str, int]:
        """Id -> row number (built once, on first use)."""
        if self._row_of is None:
            self._row_of = {name: i for i, name in enumerate(self.ids)}
        return self._row_of

    def __len__(self) -> int:
        return self.nrows

    def __contains__(self, name: object) -> bool:
        return name in self.row_of

    def __repr__(self) -> str:
        return f"BigFile({str(self.path)!r}, nrows={self.nrows}, dim={self.dim})"

    def index_of(self, ids: Iterable[str]) -> np.ndarray:
        """Row numbers of ``ids`` in the order given; raises :class:`UnknownIdError` on unknown ids."""
        row_of = self.row_of
        wanted = list(ids)
        rows = np.fromiter((row_of.get(name, -1) for name in wanted), dtype=np.int64, count=len(wanted))
        if rows.size and rows.min() < 0:
            unknown = [wanted[i] for i in np.flatnonzero(rows < 0)]
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise UnknownIdError(f"{len(unknown)} id(s) not in this BigFile: {shown}", path=self.path / ID_FILE)
        return rows

    def read_rows(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``indices`` (in the order given) as a new float32 array.

        The file is read in ascending row order, in blocks, straight into the result (no big temporaries).
        """
        rows = np.asarray(indices, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        if rows.min() < 0 or rows.max() >= self.nrows:
            raise UnknownIdError(f"row index out of range 0..{self.nrows - 1}", path=self.feature_path)
        out = np.empty((rows.size, self.dim), dtype=np.float32)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        for start in range(0, rows.size, GATHER_BLOCK_ROWS):
            block = slice(start, start + GATHER_BLOCK_ROWS)
            out[order[block]] = self.data[sorted_rows[block]]
        return out

    def read(self, ids: Iterable[str]) -> np.ndarray:
        """Features of ``ids`` in the order given, as an (n, dim) float32 array."""
        return self.read_rows(self.index_of(ids))

    def default_chunk_rows(self) -> int:
        """Rows per chunk of about CHUNK_BYTES (32 MiB): large reads, without huge fresh allocations."""
        return max(1, CHUNK_BYTES // (self.dim * DTYPE.itemsize))

    def iter_chunks(self, rows_per_chunk: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(start, stop, array)`` for consecutive contiguous row blocks; each array is an in-memory copy.

        ``rows_per_chunk`` defaults to :meth:`default_chunk_rows`.
        """
        if rows_per_chunk is None:
            rows_per_chunk = self.default_chunk_rows()
        if rows_per_chunk <= 0:
            raise ValueError("rows_per_chunk must be positive")
        for start in range(0, self.nrows, rows_per_chunk):
            stop = min(start + rows_per_chunk, self.nrows)
            yield start, stop, np.array(self.data[start:stop], dtype=np.float32)

    @staticmethod
    def write(path: str | Path, ids: Sequence[str], array: np.ndarray) -> BigFile:
        """Write ``array`` (n, d) with row ids ``ids`` as a BigFile at ``path`` (atomically) and open it."""
        matrix = np.asarray(array)
        if matrix.ndim != 2:
            raise InputFormatError(
                f"feature array has {matrix.ndim} dimensions", path=path, expected="a 2-d (rows, dim) array"
            )
        with BigFileWriter(path, ids, matrix.shape[1]) as writer:
            writer.append(matrix)
        return BigFile(path)

    @staticmethod
    def from_npy(npy_path: str | Path, ids: Sequence[str], out: str | Path) -> BigFile:
        """Convert a 2-d ``.npy`` array (read by memmap, written in chunks) to a BigFile."""
        npy_path = Path(npy_path)
        if not npy_path.is_file():
            raise MissingDataError("npy file not found", path=npy_path)
        try:
            matrix = np.load(npy_path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputFormatError(f"not a readable .npy array ({exc})", path=npy_path) from None
        if matrix.ndim != 2:
            raise InputFormatError(f"array has shape {matrix.shape}", path=npy_path, expected="a 2-d (rows, dim) array")
        if not (np.issubdtype(matrix.dtype, np.floating) or np.issubdtype(matrix.dtype, np.integer)):
            raise InputFormatError(
                f"array dtype {matrix.dtype} is not real numbers", path=npy_path, expected="a float or integer array"
            )
        if len(ids) != matrix.shape[0]:
            raise InputFormatError(
                f"{matrix.shape[0]} rows but {len(ids)} ids", path=npy_path, expected="one id per row"
            )
        with BigFileWriter(out, ids, matrix.shape[1]) as writer:
            for start in range(0, matrix.shape[0], 65536):
                writer.append(_finite_rows(matrix[start : start + 65536], npy_path, first_row=start))
        return BigFile(out)

    @staticmethod
    def from_text(text_path: str | Path, out: str | Path, chunk_rows: int = 65536) -> BigFile:
        """Convert a text file of ``<id> v1 v2 ... vD`` lines (blank lines skipped) to a BigFile.

        Values must be finite float32 numbers; a line may be at most :data:`MAX_TEXT_LINE_BYTES` long."""
        text_path = Path(text_path)
        if not text_path.is_file():
            raise MissingDataError("text feature file not found", path=text_path)
        ids: list[str] = []
        dim = 0
        out = Path(out)
        tmp_bin = _temp_sibling(out, ".bin")
        try:
            with open(tmp_bin, "wb") as bin_fh:
                pending: list[list[float]] = []
                pending_lines: list[int] = []
                for lineno, name, values in _text_feature_lines(text_path):
                    dim = dim or len(values)
                    if len(values) != dim:
                        raise InputFormatError(
                            f"{len(values)} values",
                            path=text_path,
                            line=lineno,
                            expected=f"{dim} values as on the first line",
                        )
                    pending.append(values)
                    pending_lines.append(lineno)
                    ids.append(name)
                    if len(pending) >= chunk_rows:
                        bin_fh.write(_finite_rows(pending, text_path, lines=pending_lines).tobytes())
                        pending, pending_lines = [], []
                if pending:
                    bin_fh.write(_finite_rows(pending, text_path, lines=pending_lines).tobytes())
            if not dim:
                raise InputFormatError("no feature lines", path=text_path, expected="<id> v1 v2 ... vD per line")
            with BigFileWriter(out, ids, dim) as writer:
                writer.adopt_feature_file(tmp_bin)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_bin)
        return BigFile(out)


def _text_feature_lines(text_path: Path) -> Iterator[tuple[int, str, list[float]]]:
    """``(line number, id, values)`` of each non-blank line of a text feature file, read line by
    line with a bounded line length."""
    with open(text_path, "rb") as fh:
        for lineno, raw in enumerate(iter(lambda: fh.readline(MAX_TEXT_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_TEXT_LINE_BYTES:
                raise InputFormatError(
                    f"line longer than {MAX_TEXT_LINE_BYTES:,} bytes",
                    path=text_path,
                    line=lineno,
                    expected="<id> v1 v2 ... vD",
                )
            try:
                parts = raw.decode("utf-8").split()
            except UnicodeDecodeError as exc:
                raise InputFormatError(f"not UTF-8 text ({exc.reason})", path=text_path, line=lineno) from None
            if not parts:
                continue
            if len(parts) < 2:
                raise InputFormatError(
                    "line has an id but no values", path=text_path, line=lineno, expected="<id> v1 v2 ... vD"
                )
            try:
                yield lineno, parts[0], [float(v) for v in parts[1:]]
            except ValueError:
                raise InputFormatError(
                    "value is not a number", path=text_path, line=lineno, expected="<id> v1 v2 ... vD"
                ) from None


def _finite_rows(
    rows: list[list[float]] | np.ndarray, path: Path, *, lines: list[int] | None = None, first_row: int = 0
) -> np.ndarray:
    """``rows`` as float32, refusing NaN, infinities and values beyond float32's range, naming the
    row's line (``lines``: the line of each row) or else its row number (``first_row`` + index)."""
    wide = np.asarray(rows, dtype=np.float64)
    bad = ~(np.abs(wide) <= FLOAT32_MAX)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        where = f"column {col + 1}" if lines is not None else f"row {first_row + row}, column {col}"
        raise InputFormatError(
            f"value {float(wide[row, col])!r} ({where}) is not a finite float32",
            path=path,
            line=lines[row] if lines is not None else None,
            expected="finite numbers within float32's range",
        )
    return wide.astype(DTYPE)


def _temp_sibling(path: Path, suffix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


class BigFileWriter:
    """Write a BigFile in chunks into a temporary folder; on a clean exit it is renamed to ``path``.

    Use as a context manager; :meth:`append` adds rows (converted to float32 little-endian). On
    exit the row count must equal ``len(ids)``, otherwise nothing is written.
    """

    def __init__(self, path: str | Path, ids: Sequence[str], dim: int) -> None:
        self.path = Path(path)
        self.ids = [str(i) for i in ids]
        self.dim = int(dim)
        if self.dim < 1:
            raise InputFormatError(f"feature dimension {dim}", path=self.path, expected="dim >= 1")
        if len("\n".join(self.ids).split()) != len(self.ids):
            bad = next(i for i in self.ids if not i or i != "".join(i.split()))
            raise InputFormatError(
                f"id {bad!r} is empty or contains whitespace", path=self.path, expected="ids without whitespace"
            )
        if len(set(self.ids)) != len(self.ids):
            raise InputFormatError("duplicate ids", path=self.path, expected="unique ids")
        self.rows_written = 0
        self._tmpdir: Path | None = None
        self._fh: BufferedWriter | None = None

    def _staged(self) -> tuple[Path, BufferedWriter]:
        """The staging folder and its open feature file (inside the ``with`` block only)."""
        if self._tmpdir is None or self._fh is None:
            raise RuntimeError("BigFileWriter used outside its with block")
        return self._tmpdir, self._fh

    def __enter__(self) -> BigFileWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recover_folder(self.path)
        self._tmpdir = new_staging_folder(self.path)
        self._fh = open(self._tmpdir / FEATURE_FILE, "wb")
        return self

    def append(self, rows: np.ndarray) -> None:
        """Append a (k, dim) block of rows."""
        block = np.asarray(rows)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise InputFormatError(f"block of shape {block.shape}", path=self.path, expected=f"(rows, {self.dim})")
        if self.rows_written + block.shape[0] > len(self.ids):
            raise InputFormatError(
                f"more than {len(self.ids)} rows written", path=self.path, expected=f"{len(self.ids)} rows, one per id"
            )
        _, fh = self._staged()
        with naming_os_errors(self.path / FEATURE_FILE):
            fh.write(np.ascontiguousarray(block, dtype=DTYPE).data)
        self.rows_written += block.shape[0]

    def adopt_feature_file(self, feature_path: Path) -> None:
        """Use an already written float32 little-endian file as the feature data (moved, not copied)."""
        size = feature_path.stat().st_size
        expected = len(self.ids) * self.dim * DTYPE.itemsize
        if size != expected:
            raise InputFormatError(f"feature data has {size} bytes", path=self.path, expected=f"{expected} bytes")
        tmpdir, fh = self._staged()
        fh.close()
        os.replace(feature_path, tmpdir / FEATURE_FILE)
        self._fh = open(tmpdir / FEATURE_FILE, "ab")
        self.rows_written = len(self.ids)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        tmpdir, fh = self._staged()
        try:
            with naming_os_errors(self.path / FEATURE_FILE):
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
            if exc_type is None:
                if self.rows_written != len(self.ids):
                    raise InputFormatError(
                        f"{self.rows_written} rows written for {len(self.ids)} ids",
                        path=self.path,
                        expected="one row per id",
                    )
                (tmpdir / ID_FILE).write_text("".join(i + "\n" for i in self.ids), encoding="utf-8")
                (tmpdir / SHAPE_FILE).write_text(f"{len(self.ids)} {self.dim}\n", encoding="utf-8")
                swap_in(tmpdir, self.path)
        finally:
            if tmpdir.exists():
                shutil.rmtree(tmpdir, ignore_errors=True)


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst`` as a unit, replacing ``dst`` (:func:`avsbench.data.atomic.swap_in`)."""
    swap_in(src, dst)
