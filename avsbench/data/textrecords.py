"""Whitespace-separated record files (NIST qrels, TREC runs), read the way ``sample_eval.pl`` reads them.

NIST's script reads a whole file, splits it on runs of ASCII whitespace and takes the tokens
``fields`` at a time, ignoring line structure. :func:`split_records` reproduces that silently
(``--lenient``): a leading empty token when the file starts with whitespace, records that
straddle lines, a short last record padded with empty fields. The strict reading, which checks
every line and names the file and line of a bad one, is :mod:`avsbench.data.bulktext`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

PERL_WHITESPACE = b" \t\n\r\x0b\x0c"  # Perl's \s on byte strings; also what bytes.split() splits on
_PERL_NUMBER = r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))"  # compiled on first use


def perl_number(text: str) -> float:
    """The numeric value Perl gives a string: its longest numeric prefix, 0 when there is none.

    ``"1e3"`` -> 1000.0, ``"3abc"`` -> 3.0, ``"abc"`` -> 0.0, ``"-inf"`` -> -inf, ``""`` -> 0.0.
    """
    m = re.match(_PERL_NUMBER, text, re.IGNORECASE)
    if m is None:
        return 0.0
    return float(m.group(1))


def topic_sort_key(topic: str) -> tuple[float, str]:
    """Order of topics in sample_eval's output: numeric value first, then the string (for equal values)."""
    return (perl_number(topic), topic)


def line_at(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


class RecordTokens:
    """The flat token list of a record file, ``fields`` tokens per record."""

    def __init__(self, tokens: list[str], fields: int, path: str) -> None:
        self.tokens = tokens
        self.fields = fields
        self.path = path


def _decode_tokens(tokens: Sequence[bytes], errors: str) -> list[str]:
    if not tokens:
        return []
    # tokens never contain a space, so one join/decode/split keeps them apart and runs in C
    return b" ".join(tokens).decode("utf-8", errors).split(" ")


def split_records(data: bytes, path: str | Path, *, fields: int) -> RecordTokens:
    """Tokenise a record file into ``fields``-token records the way sample_eval.pl does (module docstring).

    This is the lenient (Perl) reading; the strict one is :func:`avsbench.data.bulktext.tokenize_strict`.
    """
    raw = data.split()
    if raw and data[0] in PERL_WHITESPACE:
        raw.insert(0, b"")  # Perl's split(/\s+/) yields a leading empty field here
    tokens = _decode_tokens(raw, "surrogateescape")
    if len(tokens) % fields:
        tokens.extend([""] * (fields - len(tokens) % fields))
    return RecordTokens(tokens, fields, str(path))
