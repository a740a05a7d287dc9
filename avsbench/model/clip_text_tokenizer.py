"""CLIP's text tokenizer, as the LAFF reference applies it (our own implementation).

Cleaning: ``ftfy.fix_text``, ``html.unescape`` twice, strip, runs of whitespace to one space,
lower case. Pre-tokenization: CLIP's regular expression (``regex`` module, Unicode letter and
number classes). Each piece is mapped byte by byte to printable characters and split by
byte-level BPE with the merges of ``bpe_simple_vocab_16e6.txt.gz`` (bundled under
``avsbench/resources/clip``). A text becomes ``[SOT] + ids + [EOT]`` zero-padded to the context
length (77).

Over-long texts: the reference cuts the ids to the first 77 (``truncation="reference"``), which
drops the EOT, so the tower then pools the SOT row; :class:`ClipTruncationWarning` is issued each
time. ``truncation="openai"`` cuts and puts the EOT back at the last position.
"""

from __future__ import annotations

import functools
import gzip
import html
import itertools
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avsbench.data.resources import resource_path
from avsbench.errors import ConfigError

SOT_TEXT = "<|startoftext|>"
EOT_TEXT = "<|endoftext|>"
CONTEXT_LENGTH = 77
TRUNCATIONS = ("reference", "openai")
# 49152 vocabulary lines minus the header, the 256 bytes and the two specials are used as merges.
_N_MERGES = 49152 - 256 - 2
_WHITESPACE = re.compile(r"\s+")
_PIECE_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


class ClipTruncationWarning(UserWarning):
    """A text is longer than the CLIP context; with the reference's cut its EOT is lost."""


def default_vocabulary_path() -> Path:
    """The bundled ``bpe_simple_vocab_16e6.txt.gz``."""
    return resource_path("clip", "bpe_simple_vocab_16e6.txt.gz")


def byte_symbols() -> list[str]:
    """One printable character per byte value (index = byte).

    Bytes that are printable Latin-1 characters (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) stand for
    themselves; the others get the characters from U+0100 upwards, in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    keep = set(printable)
    symbols: list[str] = []
    extra = 0
    for value in range(256):
        if value in keep:
            symbols.append(chr(value))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def clean_text(text: str) -> str:
    """The reference's cleaning: ftfy, HTML unescaping (twice), whitespace collapsed, lower case."""
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip().lower()


class ClipTokenizer:
    """Byte-level BPE tokenizer of CLIP; ``encode`` gives the BPE ids, ``tokenize`` the model input rows."""

    def __init__(self, vocabulary: str | Path | None = None, context_length: int = CONTEXT_LENGTH) -> None:
        import regex

        path = Path(vocabulary) if vocabulary is not None else default_vocabulary_path()
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")[1 : _N_MERGES + 1]
        merges = [tuple(line.split()) for line in lines]
        self.byte_symbols = byte_symbols()
        ordered = sorted(self.byte_symbols)  # the vocabulary lists the byte symbols by code point
        tokens = [*ordered, *(s + "</w>" for s in ordered), *("".join(m) for m in merges)]
        tokens += [SOT_TEXT, EOT_TEXT]
        self.token_ids = {token: i for i, token in enumerate(tokens)}
        self.merge_rank = {pair: rank for rank, pair in enumerate(merges)}
        self.sot = self.token_ids[SOT_TEXT]
        self.eot = self.token_ids[EOT_TEXT]
        self.context_length = context_length
        self._pattern = regex.compile(_PIECE_PATTERN, regex.IGNORECASE)
        self._bpe_cache: dict[str, tuple[str, ...]] = {SOT_TEXT: (SOT_TEXT,), EOT_TEXT: (EOT_TEXT,)}

    @property
    def vocab_size(self) -> int:
        return len(self.token_ids)

    def _bpe(self, piece: str) -> tuple[str, ...]:
        """Split one byte-mapped piece into BPE symbols (the last one marked with ``</w>``)."""
        cached = self._bpe_cache.get(piece)
        if cached is not None:
            return cached
        symbols = [*piece[:-1], piece[-1] + "</w>"]
        unknown = len(self.merge_rank)
        while len(symbols) > 1:
            best = min(itertools.pairwise(symbols), key=lambda pair: self.merge_rank.get(pair, unknown))
            if best not in self.merge_rank:
                break
            symbols = _merge_pair(symbols, best)
        result = tuple(symbols)
        self._bpe_cache[piece] = result
        return result

    def encode(self, text: str) -> list[int]:
        """BPE ids of ``text`` after the reference's cleaning (no SOT/EOT)."""
        ids: list[int] = []
        for piece in self._pattern.findall(clean_text(text)):
            mapped = "".join(self.byte_symbols[b] for b in piece.encode("utf-8"))
            ids.extend(self.token_ids[symbol] for symbol in self._bpe(mapped))
        return ids

    def token_lists(self, texts: Sequence[str], truncation: str = "reference") -> list[list[int]]:
        """``[SOT] + ids + [EOT]`` per text, cut to the context length (unpadded)."""
        if truncation not in TRUNCATIONS:
            raise ConfigError(f"unknown CLIP truncation {truncation!r}", expected=" or ".join(TRUNCATIONS))
        rows: list[list[int]] = []
        for text in texts:
            row = [self.sot, *self.encode(text), self.eot]
            if len(row) > self.context_length:
                _warn_truncated(text, len(row), self.context_length, truncation)
                row = row[: self.context_length]
                if truncation == "openai":
                    row[-1] = self.eot
            rows.append(row)
        return rows

    def tokenize(self, texts: Sequence[str], truncation: str = "reference") -> np.ndarray:
        """(n, context_length) int64 rows, zero-padded, as the reference's ``clip.tokenize``."""
        rows = self.token_lists(texts, truncation)
        out = np.zeros((len(rows), self.context_length), dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out


def _merge_pair(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    """Merge every occurrence of ``pair``, left to right, without overlaps."""
    first, second = pair
    merged: list[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


def _warn_truncated(text: str, n_tokens: int, context: int, truncation: str) -> None:
    shown = text if len(text) <= 60 else text[:57] + "..."
    if truncation == "reference":
        effect = (
            "its EOT is cut off, so its feature is read at the start token "
            "(as the reference does; --clip-truncation openai keeps the EOT)"
        )
    else:
        effect = "cut, EOT kept at the last position"
    message = f"CLIP text of {n_tokens} tokens > {context}: {shown!r}: {effect}"
    warnings.warn(message, ClipTruncationWarning, stacklevel=3)


@functools.lru_cache(maxsize=2)
def default_tokenizer(context_length: int = CONTEXT_LENGTH) -> ClipTokenizer:
    """The tokenizer with the bundled vocabulary (built once per process)."""
    return ClipTokenizer(context_length=context_length)
