"""Whitespace-separated record files (NIST qrels, TREC runs), read the way ``sample_eval.pl`` reads them.

NIST's script reads a whole file, splits it on runs of ASCII whitespace and takes the tokens
``fields`` at a time, ignoring line structure. For well-formed files that is the same as
splitting each line, which is what the strict reader checks before tokenising:

* strict (default): every non-blank line must have exactly ``fields`` fields; an empty file,
  a file whose first byte is whitespace (which would shift every record in Perl), binary data
  (NUL or other control bytes) and invalid UTF-8 are errors naming the file and line.
* lenient: the Perl behaviour, silently: a leading empty token when the file starts with
  whitespace, records that straddle lines, a short last record padded with empty fields.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from avsbench.errors import InputFormatError, MissingDataError

PERL_WHITESPACE = b" \t\n\r\x0b\x0c"  # Perl's \s on byte strings; also what bytes.split() splits on
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if not _CONTROL_BYTES.match(bytes([b])))
_PERL_NUMBER = re.compile(r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.IGNORECASE)


def perl_number(text: str) -> float:
    """The numeric value Perl gives a string: its longest numeric prefix, 0 when there is none.

    ``"1e3"`` -> 1000.0, ``"3abc"`` -> 3.0, ``"abc"`` -> 0.0, ``"-inf"`` -> -inf, ``""`` -> 0.0.
    """
    m = _PERL_NUMBER.match(text)
    if m is None:
        return 0.0
    return float(m.group(1))


def topic_sort_key(topic: str) -> tuple[float, str]:
    """Order of topics in sample_eval's output: numeric value first, then the string (for equal values)."""
    return (perl_number(topic), topic)


def read_file_bytes(path: str | Path, what: str) -> bytes:
    """Read a whole input file, turning a missing or unreadable file into one clear error."""
    path = Path(path)
    if not path.exists():
        raise MissingDataError(f"{what} file not found", path=path)
    if not path.is_file():
        raise MissingDataError(f"{what} path is not a file", path=path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MissingDataError(f"cannot read {what} file: {exc.strerror or exc}", path=path) from None


def line_at(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


class RecordTokens:
    """The flat token list of a record file plus a way back from a record to its line."""

    def __init__(self, tokens: list[str], fields: int, data: bytes, path: str, lenient: bool) -> None:
        self.tokens = tokens
        self.fields = fields
        self.path = path
        self.lenient = lenient
        self._data = data
        self._record_lines: list[int] | None = None

    def column(self, index: int) -> list[str]:
        """All values of field ``index`` (0-based), one per record."""
        return self.tokens[index :: self.fields]

    def line_of(self, record: int) -> int | None:
        """1-based line of a record (strict files only; lenient records may straddle lines)."""
        if self.lenient:
            return None
        if self._record_lines is None:
            lines = self._data.split(b"\n")
            self._record_lines = [i + 1 for i, line in enumerate(lines) if line.split()]
        return self._record_lines[record]


def _starts_with_whitespace(data: bytes) -> bool:
    return data[:1] != b"" and data[0] in PERL_WHITESPACE


def _decode_tokens(tokens: Sequence[bytes], errors: str) -> list[str]:
    if not tokens:
        return []
    # tokens never contain a space, so one join/decode/split keeps them apart and runs in C
    return b" ".join(tokens).decode("utf-8", errors).split(" ")


def split_records(
    data: bytes, path: str | Path, *, fields: int, what: str, layout: str, lenient: bool = False
) -> RecordTokens:
    """Tokenise a record file into ``fields``-token records (see the module docstring for the rules).

    ``what`` names the file kind in errors ("run", "qrels"); ``layout`` describes one line.
    """
    path = str(path)
    if lenient:
        raw = data.split()
        if raw and _starts_with_whitespace(data):
            raw.insert(0, b"")  # Perl's split(/\s+/) yields a leading empty field here
        tokens = _decode_tokens(raw, "surrogateescape")
        if len(tokens) % fields:
            tokens.extend([""] * (fields - len(tokens) % fields))
        return RecordTokens(tokens, fields, data, path, lenient=True)

    expected = f"{fields} whitespace-separated fields per line: {layout}"
    if not data.strip(PERL_WHITESPACE):
        raise InputFormatError(f"empty {what} file", path=path, expected=expected)
    if data.startswith(b"\xef\xbb\xbf"):
        raise InputFormatError(
            f"{what} file starts with a UTF-8 byte-order mark, which would become part of the first topic id",
            path=path,
            line=1,
        )
    if _starts_with_whitespace(data):
        raise InputFormatError(
            f"{what} file starts with whitespace (blank line or leading blank); sample_eval.pl would shift "
            "every record by one token (use --lenient to reproduce that)",
            path=path,
            line=1,
        )
    if data.translate(None, _NOT_CONTROL_BYTES):
        bad = _CONTROL_BYTES.search(data)
        assert bad is not None  # translate() left a control byte, so search() finds one
        raise InputFormatError(
            f"binary data (byte 0x{data[bad.start()]:02x}) in a text {what} file",
            path=path,
            line=line_at(data, bad.start()),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFormatError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x})", path=path, line=line_at(data, exc.start)
        ) from None
    lines = data.split(b"\n")
    counts = list(map(len, map(bytes.split, lines)))
    if not set(counts) <= {0, fields}:
        lineno, count = next((i + 1, c) for i, c in enumerate(counts) if c not in (0, fields))
        raise InputFormatError(f"line has {count} fields", path=path, line=lineno, expected=expected)
    # ASCII without control bytes: str.split() splits exactly where Perl's \s+ does
    tokens = text.split() if text.isascii() else _decode_tokens(data.split(), "strict")
    return RecordTokens(tokens, fields, data, path, lenient=False)
