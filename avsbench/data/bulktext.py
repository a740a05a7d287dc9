"""Whole-buffer reading of whitespace record files (TREC runs, NIST qrels) with numpy.

A file is read in large chunks cut at line ends (gzip read transparently, ``-`` is standard
input). Each chunk is tokenised without Python objects per line: a byte table marks Perl's
whitespace, token starts and ends come from one comparison of neighbours, and the strict
checks (fields per line, control bytes, UTF-8) are vector tests. Only when a check fails is
the offending line looked for, to name it in the error. Columns come out as fixed-width byte
arrays (``S<n>``), 64-bit keys (for hashing and grouping) and exactly parsed floats.

Lenient reading (sample_eval.pl's rules: the whole file one token stream, records straddling
lines, a leading empty token) is kept in :mod:`avsbench.data.textrecords`; its tokens are turned
into the same column arrays by :func:`columns_from_tokens`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import IO, TYPE_CHECKING, TypeVar, cast

import numpy as np

from avsbench.data.textrecords import PERL_WHITESPACE, line_at
from avsbench.errors import InputFormatError, MissingDataError

if TYPE_CHECKING:
    from pathlib import Path

T = TypeVar("T")

CHUNK_BYTES = 8 << 20
CHUNK_THREADS = 2  # threads tokenising the chunks of a file of several chunks
MAX_LINE_BYTES = 1 << 20
MAX_FIELD_BYTES = 256  # longer than any topic, shot id or score; a longer field is an error (strict)
GZIP_MAGIC = b"\x1f\x8b"
STDIN_NAME = "-"

_CONTROL = np.zeros(256, dtype=bool)
_CONTROL[[*range(9), *range(0x0E, 0x20), 0x7F]] = True
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if not _CONTROL[b])
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True
_DIGIT_OR_PAD = _DIGIT.copy()
_DIGIT_OR_PAD[0] = True
_NUMBER_BYTE = np.zeros(256, dtype=bool)
_NUMBER_BYTE[[0, *b"0123456789+-.eE"]] = True
_HASH_PRIME = np.uint64(0xFF51AFD7ED558CCD)
_WORD_MULTIPLIERS = [
    np.uint64(m)
    for m in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xA0761D6478BD642F,
        0xE7037ED1A0B428DB,
        0x8EBC6AF09C88C6E3,
        0x589965CC75374CC3,
    )
]
_POWERS_OF_TEN = np.array([10.0**i for i in range(23)])  # exact doubles (Clinger's fast path)
_INT_POWERS_OF_TEN = np.array([10**i for i in range(19)], dtype=np.int64)


# ---------------------------------------------------------------------------------------- input


def source_label(path: str | Path) -> str:
    """How a file is named in messages ("<stdin>" for ``-``)."""
    return "<stdin>" if str(path) == STDIN_NAME else str(path)


def _check_readable(path: str | Path, what: str) -> None:
    if not os.path.exists(path):
        raise MissingDataError(f"{what} file not found", path=path)
    if not os.path.isfile(path):
        raise MissingDataError(f"{what} path is not a file", path=path)


def _raw_chunks(path: str | Path, what: str, size: int) -> Iterator[bytes]:
    """The file's bytes in pieces of about ``size`` (decompressed when gzipped)."""
    if str(path) == STDIN_NAME:
        stream = sys.stdin.buffer
        head = stream.read(2)
        if head == GZIP_MAGIC:
            import gzip  # only compressed input needs it

            stream = gzip.GzipFile(fileobj=_Prefixed(head, stream))  # type: ignore[call-overload]
            head = b""
        if head:
            yield head
        yield from iter(lambda: stream.read(size), b"")
        return
    _check_readable(path, what)
    try:
        with open(path, "rb") as fh:
            stream = _decompressed(fh)
            try:
                yield from _line_pieces(fh, size) if stream is fh else iter(lambda: stream.read(size), b"")
            except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
                raise InputFormatError(f"cannot decompress gzip {what} file: {exc}", path=path) from None
    except OSError as exc:
        raise MissingDataError(f"cannot read {what} file: {exc.strerror or exc}", path=path) from None


def _line_pieces(fh: IO[bytes], size: int) -> Iterator[bytes]:
    """A plain file's bytes in pieces of about ``size`` that end at a line end where the piece holds one
    (the file position is put back to the start of the cut line: no piece is copied to join it)."""
    while piece := fh.read(size):
        cut = piece.rfind(b"\n") + 1
        if 0 < cut < len(piece) and len(piece) == size:
            fh.seek(cut - len(piece), 1)
            piece = piece[:cut]
        yield piece


class _Prefixed:
    """A binary stream with bytes already read put back in front (for sniffing stdin)."""

    def __init__(self, head: bytes, stream) -> None:
        self._head = head
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        head, self._head = self._head, b""
        if n is None or n < 0:
            return head + self._stream.read()
        return head + self._stream.read(max(0, n - len(head)))


@contextlib.contextmanager
def open_binary(path: str | Path, what: str) -> Iterator[IO[bytes]]:
    """The file as a binary stream (decompressed when gzipped)."""
    _check_readable(path, what)
    with open(path, "rb") as fh:
        yield _decompressed(fh)


def _decompressed(fh: IO[bytes]) -> IO[bytes]:
    """An open file as is, or a stream of its decompressed bytes when it is gzipped."""
    compressed = fh.read(2) == GZIP_MAGIC
    fh.seek(0)
    if not compressed:
        return fh
    import gzip  # only compressed input needs it

    return cast(IO[bytes], gzip.GzipFile(fileobj=fh))


def line_chunks(path: str | Path, what: str, size: int | None = None) -> Generator[tuple[int, bytes], None, None]:
    """The file in chunks of whole lines (the last one may lack its newline), each with the number of its
    first line; ``size``: CHUNK_BYTES.

    A line longer than :data:`MAX_LINE_BYTES` is an error (a run or qrels line is under 100 bytes).
    """
    rest = b""
    line = 1
    for piece in _raw_chunks(path, what, size or CHUNK_BYTES):
        data = rest + piece if rest else piece
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if len(rest) > MAX_LINE_BYTES:
            raise InputFormatError(
                f"line longer than {MAX_LINE_BYTES:,} bytes in a text {what} file",
                path=source_label(path),
                line=line + data.count(b"\n", 0, cut),
                expected=f"lines of a {what} file",
            )
        if cut:
            chunk = data[:cut] if cut < len(data) else data
            yield line, chunk
            line += chunk.count(b"\n")
    if rest:
        yield line, rest


def parsed_chunks(chunks: Iterable[tuple[int, bytes]], parse: Callable[[bytes, int, bool], T]) -> Iterator[T]:
    """``parse(data, first_line, is_first_chunk)`` of each ``(first_line, data)`` of :func:`line_chunks`, in file
    order (``b""`` alone for an empty file).

    A file of several chunks is parsed by :data:`CHUNK_THREADS` threads (the work is numpy's on
    whole chunks, which runs without the GIL) while the caller merges the chunks already parsed; at
    most ``CHUNK_THREADS + 1`` chunks are held. A chunk's error is raised when its turn comes,
    so the first bad line of the file is the one reported.
    """
    pieces = iter(chunks)
    first = next(pieces, (1, b""))
    second = next(pieces, None)
    if second is None:
        yield parse(first[1], first[0], True)
        return
    from collections import deque  # only files of several chunks need these
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[Future[T]] = deque()
    with ThreadPoolExecutor(max_workers=CHUNK_THREADS, thread_name_prefix="avsbench-chunks") as pool:
        try:
            for line, data in itertools.chain((first, second), pieces):
                pending.append(pool.submit(parse, data, line, line == 1))
                if len(pending) > CHUNK_THREADS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def read_all_bytes(path: str | Path, what: str) -> bytes:
    """The whole (decompressed) file."""
    return b"".join(_raw_chunks(path, what, CHUNK_BYTES))


def is_gzip_file(path: str | Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == GZIP_MAGIC
    except OSError:
        return False


# ----------------------------------------------------------------------------------- tokenising


class Chunk:
    """The tokens of one chunk of a record file: ``fields`` consecutive tokens per record.

    (A plain class, not a dataclass: the scorer's start-up time counts every class built at import.)
    """

    __slots__ = ("buf", "starts", "ends", "fields", "path", "first_line")

    def __init__(
        self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, fields: int, path: str, first_line: int
    ) -> None:
        self.buf = buf  # the chunk's bytes (uint8), followed by zero bytes (see padded)
        self.starts = starts  # token start offsets
        self.ends = ends  # token end offsets (exclusive)
        self.fields = fields
        self.path = path
        self.first_line = first_line  # 1-based line number of the chunk's first line

    @property
    def num_records(self) -> int:
        return len(self.starts) // self.fields

    def line_of(self, record: int) -> int:
        """1-based line of a record."""
        return self.first_line + int(np.count_nonzero(self.buf[: self.starts[record * self.fields]] == 10))

    def field_bytes(self, index: int) -> np.ndarray:
        """Field ``index`` of every record as a fixed-width byte array (``S<n>``)."""
        return gather_tokens(self.buf, self.starts[index :: self.fields], self.ends[index :: self.fields])

    def first_token(self, index: int) -> bytes:
        return bytes(self.buf[self.starts[index] : self.ends[index]])


def gather_tokens(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Copy tokens (given by offsets) into one ``S<width>`` array (shorter tokens padded with NUL).

    ``buf`` must extend at least the widest token's length past the last start (see :func:`padded`).
    """
    n = len(starts)
    lengths = ends - starts
    width = max(1, int(lengths.max())) if n else 1
    if n == 0:
        return np.zeros(0, dtype=f"S{width}")
    windows = np.lib.stride_tricks.sliding_window_view(buf, width)
    matrix = windows[starts]  # one copy of each token's row of bytes
    inside = np.arange(width, dtype=lengths.dtype) < lengths[:, None]
    np.multiply(matrix, inside, out=matrix)  # bytes past each token's end become 0 (faster than a masked store)
    return matrix.view(f"S{width}").ravel()


def padded(data: bytes) -> np.ndarray:
    """``data`` as uint8 followed by zero bytes, so that any field's bytes can be read as one window."""
    buf = np.zeros(len(data) + MAX_FIELD_BYTES + 1, dtype=np.uint8)
    buf[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buf


def tokenize_strict(
    data: bytes, path: str, *, fields: int, what: str, layout: str, first_line: int, first_chunk: bool
) -> Chunk:
    """Tokenise a chunk of whole lines; every non-blank line must hold exactly ``fields`` fields."""
    expected = f"{fields} whitespace-separated fields per line: {layout}"
    if first_chunk:
        _check_file_start(data, path, what, expected)
    if data.translate(None, _NOT_CONTROL_BYTES):
        bad = int(np.flatnonzero(_CONTROL[np.frombuffer(data, dtype=np.uint8)])[0])
        raise InputFormatError(
            f"binary data (byte 0x{data[bad]:02x}) in a text {what} file",
            path=path,
            line=first_line + line_at(data, bad) - 1,
        )
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + line_at(data, exc.start) - 1
            raise InputFormatError(f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path=path, line=line) from None
    whole = padded(data)
    buf = whole[: len(data)]
    simple = _single_space_tokens(data, buf, fields)
    if simple is not None:
        starts, ends = simple
    else:
        space = buf <= 0x20  # without control bytes, the bytes up to 0x20 are Perl's whitespace
        edges = np.flatnonzero(np.diff(space.view(np.int8), prepend=np.int8(1), append=np.int8(1)))
        starts, ends = edges[0::2], edges[1::2]  # (start, end) of each run of non-whitespace bytes
        if not _lines_hold(buf, starts, ends, fields):
            _raise_field_count(data, path, fields, expected, first_line)
    too_long = np.flatnonzero(ends - starts > MAX_FIELD_BYTES)
    if too_long.size:
        at = int(starts[too_long[0]])
        raise InputFormatError(
            f"field of {int(ends[too_long[0]] - at):,} bytes",
            path=path,
            line=first_line + line_at(data, at) - 1,
            expected=expected,
        )
    return Chunk(whole, starts, ends, fields, path, first_line)


def _single_space_tokens(data: bytes, buf: np.ndarray, fields: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Token offsets of the common layout (fields separated by one space, lines by one newline), else None.

    Then the separators are exactly the bytes up to 0x20, each a space or a newline with a field byte
    before it, and every ``fields``-th one must be a newline.
    """
    if not data or data[0] <= 0x20:
        return None
    ends = np.flatnonzero(buf <= 0x20)
    separators = buf[ends]
    newlines = separators == 0x0A
    if not ((separators == 0x20) | newlines).all() or (np.diff(ends) == 1).any():
        return None  # a tab, CR, VT or FF, or two separators in a row
    unterminated = data[-1] != 0x0A
    if unterminated:
        ends = np.append(ends, len(data))  # the last line's end
    if len(ends) % fields:
        return None
    line_ends = ends[fields - 1 :: fields]
    inside = line_ends[:-1] if unterminated else line_ends
    if not (buf[inside] == 0x0A).all() or int(np.count_nonzero(newlines)) != len(inside):
        return None  # some line holds more or fewer fields: the general path names it
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    return starts, ends


def _check_file_start(data: bytes, path: str, what: str, expected: str) -> None:
    if (not data or data[0] in PERL_WHITESPACE) and not data.strip(PERL_WHITESPACE):  # (no copy of a chunk)
        raise InputFormatError(f"empty {what} file", path=path, expected=expected)
    if data.startswith(b"\xef\xbb\xbf"):
        raise InputFormatError(
            f"{what} file starts with a UTF-8 byte-order mark, which would become part of the first topic id",
            path=path,
            line=1,
        )
    if data[0] in PERL_WHITESPACE:
        raise InputFormatError(
            f"{what} file starts with whitespace (blank line or leading blank); sample_eval.pl would shift "
            "every record by one token (use --lenient to reproduce that)",
            path=path,
            line=1,
        )


def _lines_hold(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, fields: int) -> bool:
    """True when each record's fields share one line and each record starts a new line."""
    if len(starts) % fields:
        return False
    if not len(starts):
        return True
    newlines = np.flatnonzero(buf == 10)
    first = np.searchsorted(newlines, starts[0::fields])  # lines before the record's first field
    last = np.searchsorted(newlines, ends[fields - 1 :: fields])
    return bool(np.array_equal(first, last) and (first[1:] > last[:-1]).all())


def _raise_field_count(data: bytes, path: str, fields: int, expected: str, first_line: int) -> None:
    for number, line in enumerate(data.split(b"\n"), first_line):
        count = len(line.split())
        if count not in (0, fields):
            raise InputFormatError(f"line has {count} fields", path=path, line=number, expected=expected)
    raise AssertionError("field count check failed without a bad line")  # pragma: no cover


def chunk_from_lenient_tokens(tokens: list[bytes], fields: int, path: str) -> Chunk:
    """A :class:`Chunk` over tokens already split the lenient (Perl) way (empty tokens allowed)."""
    data = b" ".join(tokens)
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    starts = np.cumsum(lengths + 1) - lengths - 1
    buf = np.zeros(len(data) + int(lengths.max(initial=0)) + 1, dtype=np.uint8)
    buf[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return Chunk(buf, starts, starts + lengths, fields, path, 1)


# ----------------------------------------------------------------------------------- columns


def hash_keys(values: np.ndarray) -> np.ndarray:
    """A 64-bit key per byte string (``S<n>`` array); equal strings get equal keys whatever the width.

    The bytes are read as 8-byte words (zero padded), each word multiplied by its own odd constant,
    summed and mixed. Different strings may share a key: users compare the strings where keys match.
    """
    n = len(values)
    width = values.dtype.itemsize
    words = -(-width // 8)
    if width % 8 or not values.flags.c_contiguous:
        values = np.ascontiguousarray(values, dtype=f"S{words * 8}")
    matrix = values.view("<u8").reshape(n, words) if n else np.zeros((0, words), np.uint64)
    key = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(words):
            key += (matrix[:, j] ^ (matrix[:, j] >> np.uint64(29))) * _WORD_MULTIPLIERS[j % len(_WORD_MULTIPLIERS)]
        key ^= key >> np.uint64(31)
        key *= _HASH_PRIME
        key ^= key >> np.uint64(33)
    return key


def group_codes(values: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """Distinct values in order of first appearance and each row's index into them.

    Rows of one value usually come in blocks (a topic's lines), so only block heads are looked up.
    """
    n = len(values)
    if n == 0:
        return [], np.zeros(0, dtype=np.int64)
    heads = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    if len(heads) * 8 > n:
        uniques, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return [uniques[i].tobytes().rstrip(b"\0") for i in order], rank[inverse.ravel()]
    index: dict[bytes, int] = {}
    block_codes = np.fromiter(
        (index.setdefault(v, len(index)) for v in values[heads].tolist()), dtype=np.int64, count=len(heads)
    )
    lengths = np.diff(np.append(heads, n))
    return list(index), np.repeat(block_codes, lengths)


def _whole_numbers(matrix: np.ndarray) -> np.ndarray:
    """The values of unsigned decimal integers of at most 15 digits (``S<n>`` bytes as rows, zero padded)."""
    value = np.zeros(len(matrix), dtype=np.int64)
    for j in range(matrix.shape[1]):
        column = matrix[:, j]
        digit = column != 0  # a token's padding only follows its digits
        value = np.where(digit, value * 10 + column.astype(np.int64) - ord("0"), value)
    return value.astype(np.float64)


def parse_floats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers from ``S<n>`` decimal texts, bit-identical to ``float()``; second array: rows rejected.

    Plain decimals (``[+-]digits[.digits]``) whose digits form an integer below 2^53 and with at
    most 22 decimals are one IEEE division of exact operands, correctly rounded as ``float()``
    is; other rows (exponents, long mantissas) go through ``float()``. Rows holding a byte no
    decimal number uses, or that ``float()`` rejects, are marked in the second array.
    """
    n = len(values)
    width = values.dtype.itemsize
    if n and width <= 15 and _DIGIT_OR_PAD[values.view(np.uint8)].all():  # whole numbers (ranks): exact in float64
        return _whole_numbers(values.view(np.uint8).reshape(n, width)), np.zeros(n, dtype=bool)
    if n and _NUMBER_BYTE[values.view(np.uint8)].all():  # only [+-.eE0-9]: numpy's parser, float()'s rounding
        with contextlib.suppress(ValueError):  # a malformed one ("1e", "1-2"): found row by row below
            return values.astype(np.float64), np.zeros(n, dtype=bool)
    columns = values.view(np.uint8).reshape(n, width).T.copy() if n else np.zeros((width, 0), np.uint8)
    first = columns[0]
    signed = (first == ord("-")) | (first == ord("+"))
    mantissa = np.zeros(n, dtype=np.int64)
    digits = np.zeros(n, dtype=np.int64)
    decimals = np.zeros(n, dtype=np.int64)
    points = np.zeros(n, dtype=np.int64)
    odd = np.zeros(n, dtype=bool)  # a byte outside [+-]digits[.digits]
    for j in range(width):
        c = columns[j]
        digit = _DIGIT[c]
        point = c == ord(".")
        mantissa = np.where(digit, mantissa * 10 + (c.astype(np.int64) - ord("0")), mantissa)
        digits += digit
        decimals += digit & (points > 0)
        points += point
        stray = ~(digit | point) & (c != 0)
        odd |= (stray & ~signed) if j == 0 else stray
    fast = ~odd & (points <= 1) & (digits > 0) & (digits <= 18) & (mantissa < 2**53) & (decimals <= 22)
    result = mantissa.astype(np.float64) / _POWERS_OF_TEN[np.minimum(decimals, 22)]
    result = np.where(first == ord("-"), -result, result)
    failed = np.asarray(~_NUMBER_BYTE[columns].all(axis=0))  # a byte no plain decimal number uses
    for i in np.flatnonzero(~fast & ~failed).tolist():
        try:
            result[i] = float(values[i])
        except ValueError:
            failed[i] = True
    return result, failed
