"""Run files: TREC 6-column text (``topic Q0 shotId rank score tag``) and TRECVID XML submissions.

What the scorer uses from a TREC run is the topic, the shot and the score; the rank column
and the tag are ignored (sample_eval.pl orders by score). A run keeps, per topic, every line's
shot and score in file order, so duplicate lines stay visible (a later line's score wins).

The one order of shots everywhere: score descending, then shot id descending (byte order),
see :func:`ranked_shots`.

Strict reading (default) rejects a wrong field count, a non-numeric or non-finite score, an
empty file, a file starting with whitespace and binary data, naming file and line. ``lenient``
reads like sample_eval.pl: whole-file whitespace tokens six at a time (a short line shifts the
rest), a leading empty token when the file starts with whitespace, and Perl's numeric prefix
for scores ("abc" -> 0, "3x" -> 3).

TRECVID XML (``videoAdhocSearchResults``) is read the way NIST turns it into TREC lines: topic
"1" + tNum, shots ordered by seqNum; the derived scores (n, n-1, ..., 1 for n items) keep
that order. XML is parsed as a stream (``iterparse``, elements cleared as they go), entity
declarations and references refused as the bytes are read.
"""

from __future__ import annotations

import array
import io
import itertools
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from avsbench.data import bulktext
from avsbench.data.textrecords import (
    PERL_WHITESPACE,
    perl_number,
    split_records,
    topic_sort_key,
)
from avsbench.errors import InputFormatError

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

TREC_LAYOUT = "topic Q0 shotId rank score tag"
PRUNE_ROWS = 1 << 16  # a topic's pending lines before the ones that cannot be among its best are dropped


def ranked_shots(shots: Sequence[str], scores: Sequence[float]) -> list[tuple[str, float]]:
    """Distinct shots with their scores in scorer order: score descending, then shot id descending.

    ``shots``/``scores`` are a topic's lines in file order; for a shot listed more than once
    the later line's score counts (as in sample_eval.pl).
    """
    final = dict(zip(shots, scores))
    return [(shot, score) for score, shot in sorted(zip(final.values(), final), reverse=True)]


def order_rows(shot_ids: np.ndarray, scores: np.ndarray, rows: np.ndarray, limit: int | None = None) -> np.ndarray:
    """``rows`` (one per distinct shot) in scorer order, the first ``limit`` of them."""
    ranked_scores = scores[rows]
    if len(rows) < 2 or (ranked_scores[1:] < ranked_scores[:-1]).all():
        return rows[:limit]
    if limit is not None and len(rows) > limit:  # only shots scoring at least the limit-th best score can make it
        floor = np.partition(ranked_scores, len(rows) - limit)[len(rows) - limit]
        rows = rows[ranked_scores >= floor]
        ranked_scores = scores[rows]
    return rows[np.lexsort((*_byte_order_words(shot_ids[rows]), ranked_scores))[::-1]][:limit]


def _in_scorer_order(shot_ids: np.ndarray, scores: np.ndarray, rows: np.ndarray) -> bool | None:
    """Whether ``rows`` (distinct shots) are already in scorer order, checked pair by pair without sorting;
    None when a score is NaN."""
    ranked = scores[rows]
    if np.isnan(ranked).any():
        return None
    tied = ranked[:-1] == ranked[1:]
    if not (tied | (ranked[:-1] > ranked[1:])).all():
        return False
    at = np.flatnonzero(tied)
    upper, lower = _byte_order_words(shot_ids[rows[at]]), _byte_order_words(shot_ids[rows[at + 1]])
    greater, decided = np.zeros(len(at), dtype=bool), np.zeros(len(at), dtype=bool)
    for upper_word, lower_word in zip(reversed(upper), reversed(lower)):  # first word first
        greater |= ~decided & (upper_word > lower_word)
        decided |= upper_word != lower_word
    return bool(greater.all())


def _byte_order_words(ids: np.ndarray) -> list[np.ndarray]:
    """Big-endian 8-byte words of ``S<n>`` ids (zero padded), last word first: as lexsort keys they order the ids
    byte-wise, as comparing the ids does, but compare as integers (much faster than strings)."""
    words = -(-ids.dtype.itemsize // 8)
    matrix = np.ascontiguousarray(ids, dtype=f"S{words * 8}").view(">u8").reshape(len(ids), words)
    return [matrix[:, j] for j in range(words - 1, -1, -1)]


def distinct_shot_count(lines: TopicLines) -> int:
    """Distinct shots listed for a topic (shots dropped while reading with ``keep_best`` included)."""
    return len(lines.distinct_rows()) + lines.dropped_shots


def last_lines(shot_ids: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
    """Indices (ascending) of the last line of each distinct shot (``keys``: their hash keys, if known)."""
    n = len(shot_ids)
    if keys is None:
        keys = bulktext.hash_keys(shot_ids)
    ascending = np.sort(keys)
    if n < 2 or (ascending[1:] != ascending[:-1]).all():
        return np.arange(n)  # no key twice: every line is a distinct shot's only line
    order = np.argsort(keys)  # keys[order] is ``ascending``
    same = np.flatnonzero(ascending[1:] == ascending[:-1])
    heads = np.flatnonzero(np.concatenate(([True], ascending[1:] != ascending[:-1])))
    if (shot_ids[order[same]] != shot_ids[order[same + 1]]).any():  # two ids share a key
        final = {s: i for i, s in enumerate(shot_ids.tolist())}
        return np.array(sorted(final.values()), dtype=np.int64)
    return np.sort(np.maximum.reduceat(order, heads))  # the last line of each key's group


class TopicLines:
    """One topic's run lines in file order.

    Held as arrays (``shot_ids`` bytes, ``score_values`` float64); ``shots`` and ``scores`` give
    them as Python lists. A topic read with ``keep_best`` holds only the lines that can still
    reach its best shots (``num_lines`` still counts every line read).
    """

    def __init__(self, shots: Sequence[str] = (), scores: Sequence[float] = ()) -> None:
        self.shot_ids = _encode_ids(shots)
        self.score_values = np.asarray(scores, dtype=np.float64)
        self._num_lines = len(self.score_values)
        self._keys: np.ndarray | None = None
        self.rank_values: np.ndarray | None = None  # the rank column (NaN where not a number); None: no rank column
        self.dropped_shots = 0  # shots dropped while reading as beyond the best kept_best (see RunFile.read)
        self.kept_best: int | None = None
        self._distinct: np.ndarray | None = None
        self._orders: dict[int | None, np.ndarray] = {}

    @classmethod
    def from_arrays(
        cls,
        shot_ids: np.ndarray,
        scores: np.ndarray,
        num_lines: int | None = None,
        keys: np.ndarray | None = None,
        ranks: np.ndarray | None = None,
    ) -> TopicLines:
        lines = cls()
        lines.shot_ids, lines.score_values, lines._keys, lines.rank_values = shot_ids, scores, keys, ranks
        lines._num_lines = len(scores) if num_lines is None else num_lines
        return lines

    def __repr__(self) -> str:
        return f"TopicLines({self.num_lines} lines)"

    @property
    def shot_keys(self) -> np.ndarray:
        """The :func:`~avsbench.data.bulktext.hash_keys` of ``shot_ids``."""
        if self._keys is None:
            self._keys = bulktext.hash_keys(self.shot_ids)
        return self._keys

    def distinct_rows(self) -> np.ndarray:
        """Rows (ascending) of each distinct shot's last line (computed once; see :func:`last_lines`)."""
        if self._distinct is None:
            self._distinct = last_lines(self.shot_ids, self.shot_keys)
        return self._distinct

    def scorer_rows(self, limit: int | None = None) -> np.ndarray:
        """:meth:`distinct_rows` in scorer order, the first ``limit`` of them (computed once per limit)."""
        rows = self.distinct_rows()
        if limit is not None and limit >= len(rows):
            limit = None  # the same rows: share the work with the unlimited order
        if limit not in self._orders:
            self._orders[limit] = order_rows(self.shot_ids, self.score_values, rows, limit)
        return self._orders[limit]

    @property
    def shots(self) -> list[str]:
        return [s.decode("utf-8", "surrogateescape") for s in self.shot_ids.tolist()]

    @property
    def scores(self) -> list[float]:
        return self.score_values.tolist()

    @property
    def num_lines(self) -> int:
        return self._num_lines

    def rank_conflict(self) -> str | None:
        """How the score column contradicts the rank column, or None when both give the same order.

        The scorer orders by score (ties by shot id descending); a run whose scores tie or rise
        with the rank is then scored in another order than the one its ranks say. A topic read with
        ``keep_best`` is judged on the lines kept (the ones scored), and says so.
        """
        if self.rank_values is None or len(self.score_values) < 2:
            return None
        rows = self.distinct_rows()
        ranks = self.rank_values[rows]
        if np.isnan(ranks).any():
            return None
        by_rank = rows if (ranks[1:] > ranks[:-1]).all() else rows[np.argsort(ranks, kind="stable")]
        in_order = _in_scorer_order(self.shot_ids, self.score_values, by_rank)
        if in_order is None:  # a NaN score: compare with the sorted order
            in_order = np.array_equal(self.scorer_rows(), by_rank)
        if in_order:
            return None
        steps = np.diff(self.score_values[by_rank])
        among = "" if self.kept_best is None else f", among the {len(rows)} best-scored shots kept"
        if (steps == 0).any():
            return (
                f"ties on the score ({int((steps == 0).sum())} shot(s) score the same as the one ranked above{among})"
            )
        if (steps > 0).sum() * 2 > len(steps):
            return f"scores rise with the rank{among}"
        return f"score order differs from the rank order{among}"

    def ranked(self) -> list[tuple[str, float]]:
        """Distinct shots in scorer order (see :func:`ranked_shots`)."""
        rows = self.scorer_rows()
        ids = self.shot_ids[rows].tolist()
        return [(s.decode("utf-8", "surrogateescape"), v) for s, v in zip(ids, self.score_values[rows].tolist())]


def _encode_ids(shots: Sequence[str]) -> np.ndarray:
    if not len(shots):
        return np.zeros(0, dtype="S1")
    return np.array([s.encode("utf-8", "surrogateescape") for s in shots], dtype=bytes)


class RunEntry(NamedTuple):
    """One result line as the scorer sees it."""

    topic: str
    shot: str
    score: float


@dataclass
class RunFile:
    """A run: topic id (qrels style, "1611") -> :class:`TopicLines`, topics in first-appearance order."""

    name: str
    topics: dict[str, TopicLines] = field(default_factory=dict)
    tag: str = "avsbench"
    path: str | None = None
    source_format: str = "trec"  # "trec" or "xml"

    def __len__(self) -> int:
        return sum(t.num_lines for t in self.topics.values())

    def rank_conflicts(self) -> dict[str, str]:
        """Topic -> how its score column contradicts its rank column (see :meth:`TopicLines.rank_conflict`)."""
        found = {}
        for topic in self.topic_ids:
            conflict = self.topics[topic].rank_conflict()
            if conflict:
                found[topic] = conflict
        return found

    @property
    def topic_ids(self) -> list[str]:
        """Topics with at least one line, in numeric order."""
        return sorted((t for t, lines in self.topics.items() if lines.num_lines), key=topic_sort_key)

    def entries(self) -> Iterator[RunEntry]:
        """Every line, topic by topic in first-appearance order, lines in file order."""
        for topic, lines in self.topics.items():
            for shot, score in zip(lines.shots, lines.scores):
                yield RunEntry(topic, shot, score)

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, str, float]], name: str, tag: str | None = None) -> RunFile:
        """Build a run from ``(topic, shot, score)`` triples (e.g. a ranker's output)."""
        collected: dict[str, tuple[list[str], list[float]]] = {}
        for topic, shot, score in entries:
            shots, scores = collected.setdefault(topic, ([], []))
            shots.append(shot)
            scores.append(float(score))
        run = cls(name=name, tag=tag or name)
        run.topics = {topic: TopicLines(shots, scores) for topic, (shots, scores) in collected.items()}
        return run

    @classmethod
    def read(cls, path: str | Path, *, lenient: bool = False, keep_best: int | None = None) -> RunFile:
        """Read a TREC or TRECVID XML run (by content: XML starts with '<'); an XML file must hold one run.

        ``keep_best``: keep per topic only the lines that can be among its ``keep_best`` best
        shots (bounded memory for huge runs; scoring with at most that many results is exact).
        """
        runs = cls.read_all(path, lenient=lenient, keep_best=keep_best)
        if len(runs) != 1:
            raise InputFormatError(
                f"XML file holds {len(runs)} runs (videoAdhocSearchRunResult)",
                path=path,
                expected="one run; use RunFile.read_all",
            )
        return runs[0]

    @classmethod
    def read_all(cls, path: str | Path, *, lenient: bool = False, keep_best: int | None = None) -> list[RunFile]:
        """Read every run of a file: one for a TREC file, one per ``videoAdhocSearchRunResult`` for XML.

        Gzipped files are read transparently and ``-`` reads standard input.
        """
        label = bulktext.source_label(path)
        chunks = bulktext.line_chunks(path, "run")
        first_chunk = next(chunks, (1, b""))
        first = first_chunk[1]
        xml = is_xml(first)
        if xml and str(path) != bulktext.STDIN_NAME:
            chunks.close()
            with bulktext.open_binary(path, "run") as stream:  # parsed as a stream, never held whole
                return _read_xml(stream, label, lenient)
        if lenient or xml:
            data = first + b"".join(data for _, data in chunks)
            return cls.from_bytes(data, label, lenient=lenient)
        reader = _TrecReader(label, keep_best if str(path) != bulktext.STDIN_NAME else None)
        reader.read(itertools.chain([first_chunk], chunks))
        if reader.inexact:  # a shot kept as one of the best was later given a lower score: read it all again
            reader = _TrecReader(label, None)
            reader.read(bulktext.line_chunks(path, "run"))
        return [reader.run()]

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path = "<run>", *, lenient: bool = False) -> list[RunFile]:
        if data.lstrip(PERL_WHITESPACE)[:1] == b"<":
            return _read_xml(data, str(path), lenient)
        label = str(path)
        if lenient:
            records = split_records(data, label, fields=6)
            chunk = bulktext.chunk_from_lenient_tokens(
                [t.encode("utf-8", "surrogateescape") for t in records.tokens], 6, label
            )
            reader = _TrecReader(label, None, lenient=True)
            reader.add(chunk)
            reader.finish()
            return [reader.run()]
        reader = _TrecReader(label, None)
        reader.read([(1, data)])
        return [reader.run()]

    @classmethod
    def from_dict(cls, scores: Mapping[Any, Mapping[Any, Any]], name: str = "run", tag: str | None = None) -> RunFile:
        """A run from ``{topic: {shot: score}}``, e.g. ``RunFile.from_dict({"1701": {"shot1_1": 2.0}})``."""
        from avsbench.interop import run_from_dict

        return run_from_dict(scores, name, tag)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{topic: {shot: score}}`` (a later duplicate line's score wins, as in scoring)."""
        from avsbench.interop import run_to_dict

        return run_to_dict(self)

    @classmethod
    def from_dataframe(cls, frame: pd.DataFrame, name: str = "run", tag: str | None = None) -> RunFile:
        """A run from a frame with columns ``topic, shot, score`` (or ``query_id, doc_id, score``)."""
        from avsbench.interop import run_from_dataframe

        return run_from_dataframe(frame, name, tag)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per line: ``topic, shot, score``, in file order."""
        from avsbench.interop import run_to_dataframe

        return run_to_dataframe(self)

    def write(self, path: str | Path) -> None:
        """Write the run as TREC lines, atomically: topics in numeric order, shots in scorer order
        (score desc, shot id desc), ranks 1..n, one line per distinct shot (a later duplicate's score wins)."""
        for topic, lines in self.topics.items():
            bad = next((s for s in lines.scores if not math.isfinite(s)), None)
            if bad is not None:
                raise InputFormatError(f"cannot write non-finite score {bad!r} (topic {topic})", path=path)
        from avsbench.data.atomic import atomic_write  # only writing needs it

        with atomic_write(path) as fh:
            for topic in self.topic_ids:
                for rank, (shot, score) in enumerate(self.topics[topic].ranked(), 1):
                    fh.write(f"{topic} Q0 {shot} {rank} {format_score(score)} {self.tag}\n")


def format_score(score: float) -> str:
    """Shortest text that reads back as the same float ("9999" for integral scores)."""
    if score.is_integer() and abs(score) < 2**53:
        return str(int(score))
    return repr(score)


class _LeftOut(NamedTuple):
    """The lines of a topic left out of a chunk (each the last line of its shot in the chunk, below the best)."""

    chunk: _ChunkColumns
    rows: np.ndarray  # their rows in the chunk
    keys: np.ndarray
    best: tuple[float, bytes]  # the best (score, id) among them


class _TopicPart(NamedTuple):
    """A topic's lines in one chunk: those that can be among its best, and every line's shot key."""

    name: bytes
    ids: np.ndarray
    scores: np.ndarray
    keys: np.ndarray
    ranks: np.ndarray
    line_keys: np.ndarray  # the key of every line of the chunk (kept or not)
    complete: bool  # every line is kept
    left: _LeftOut | None


def _topic_part(chunk: _ChunkColumns, name: bytes, rows: np.ndarray, keep: int | None) -> _TopicPart:
    """The lines ``rows`` (ascending) of one topic; with ``keep``, only each shot's last line in the chunk, and of
    those only the ones scoring at least the ``keep``-th best: the others are :class:`_LeftOut` (a later line of a
    shot kept from an earlier chunk is taken back when the chunk is merged)."""
    scores, keys = chunk.scores[rows], chunk.keys[rows]
    kept = np.arange(len(rows))
    left_out = None
    if keep is not None and len(rows) > keep:
        kept = last_lines(chunk.ids[rows], keys)  # a shot's earlier lines in the chunk never count
        if len(kept) > keep:
            floor = np.partition(scores[kept], len(kept) - keep)[len(kept) - keep]  # the keep-th best score
            left, kept = kept[scores[kept] < floor], kept[scores[kept] >= floor]
            if left.size:
                top = scores[left].max()
                best = (float(top), max(chunk.ids[rows[left[scores[left] == top]]].tolist()))
                left_out = _LeftOut(chunk, rows[left], keys[left], best)
    at = rows[kept]
    complete = len(kept) == len(rows)
    return _TopicPart(name, chunk.ids[at], scores[kept], keys[kept], chunk.ranks(at), keys, complete, left_out)


class _TopicBest:
    """A topic's lines while a run is read, less (with ``keep``) those that cannot reach its best ``keep`` shots.

    Lines are left out as each chunk is read (see :func:`_topic_part`) and when too many are held
    (all but the best ``keep`` shots). The best (score, id) left out is remembered: the result is
    exact when the ``keep`` shots kept beat it; otherwise (a kept shot demoted by a later line)
    the caller reads the topic in full.
    """

    def __init__(self, keep: int | None) -> None:
        self.keep = keep
        self.ids: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.ranks: list[np.ndarray] = []
        self.line_keys: list[np.ndarray] = []  # every line's key (with keep: to count the distinct shots)
        self.pending = 0
        self.lines = 0
        self.pruned = False
        self.best_dropped: tuple[float, bytes] | None = None

    def add(self, part: _TopicPart) -> None:
        if part.left is not None:  # first: a line left out may be a later line of a shot held
            self._take_back(part.left)
        self._hold(part.ids, part.scores, part.keys, part.ranks)
        self.lines += len(part.line_keys)
        if self.keep is not None:
            self.line_keys.append(part.line_keys)
        if not part.complete:
            self.pruned = True
        if self.keep is not None and self.pending > max(4 * self.keep, PRUNE_ROWS):
            self._prune()

    def _hold(self, ids: np.ndarray, scores: np.ndarray, keys: np.ndarray, ranks: np.ndarray) -> None:
        self.ids.append(ids)
        self.scores.append(scores)
        self.keys.append(keys)
        self.ranks.append(ranks)
        self.pending += len(scores)

    def _take_back(self, left: _LeftOut) -> None:
        """Hold the lines left out of a chunk whose shot is held from an earlier chunk (they are its later lines)."""
        held = np.sort(self._joined()[2]) if self.ids else np.zeros(0, np.uint64)
        if held.size:
            at = np.minimum(np.searchsorted(held, left.keys), len(held) - 1)
            again = np.flatnonzero(held[at] == left.keys)
            if again.size:
                rows = left.rows[again]
                self._hold(left.chunk.ids[rows], left.chunk.scores[rows], left.keys[again], left.chunk.ranks(rows))
        self._dropped(left.best)

    def _dropped(self, best: tuple[float, bytes]) -> None:
        self.pruned = True
        self.best_dropped = best if self.best_dropped is None else max(self.best_dropped, best)

    def _joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if len(self.ids) > 1:
            width = max(a.dtype.itemsize for a in self.ids)
            self.ids = [np.concatenate([a.astype(f"S{width}") for a in self.ids])]
            for held in (self.scores, self.keys, self.ranks):
                held[:] = [np.concatenate(held)]
        return self.ids[0], self.scores[0], self.keys[0], self.ranks[0]

    def _prune(self) -> tuple[float, bytes] | None:
        """Hold only the best ``keep`` shots (their last lines, in file order); the (score, id) of the
        ``keep``-th, or None when fewer are held."""
        assert self.keep is not None
        ids, scores, keys, ranks = self._joined()
        distinct = last_lines(ids, keys)
        rows = order_rows(ids, scores, distinct, limit=self.keep + 1)
        if len(rows) > self.keep:
            self._dropped((float(scores[rows[self.keep]]), bytes(ids[rows[self.keep]])))
            rows = rows[: self.keep]
        kth = (float(scores[rows[-1]]), bytes(ids[rows[-1]])) if len(rows) == self.keep else None
        rows = np.sort(rows)  # file order
        self.ids, self.scores, self.keys, self.ranks = [ids[rows]], [scores[rows]], [keys[rows]], [ranks[rows]]
        self.pending = len(rows)
        return kth

    def lines_kept(self) -> tuple[TopicLines, bool]:
        """The topic's lines (all, or those kept) and whether the kept ones are known to hold the best."""
        if not self.pruned:
            ids, scores, keys, ranks = self._joined()
            return TopicLines.from_arrays(ids, scores, keys=keys, ranks=ranks), True
        assert self.keep is not None
        kth = self._prune()
        ids, scores, keys, ranks = self._joined()
        best_dropped = self.best_dropped
        exact = best_dropped is None or (kth is not None and kth > best_dropped)  # None: only earlier lines left out
        lines = TopicLines.from_arrays(ids, scores, num_lines=self.lines, keys=keys, ranks=ranks)
        listed = np.sort(np.concatenate(self.line_keys))
        distinct = int(np.count_nonzero(listed[1:] != listed[:-1])) + 1  # shots listed (two ids sharing a key: one)
        lines.dropped_shots, lines.kept_best = distinct - len(ids), self.keep
        return lines, exact


class _ChunkColumns:
    """What every line of a chunk needs (shot ids, their keys, scores); the ranks are parsed for the lines kept."""

    def __init__(self, chunk: bulktext.Chunk, ids: np.ndarray, keys: np.ndarray, scores: np.ndarray) -> None:
        self.chunk, self.ids, self.keys, self.scores = chunk, ids, keys, scores
        self.all_ranks: np.ndarray | None = None

    def parse_all_ranks(self) -> None:
        """Parse the rank column of every line at once (when every line is kept)."""
        self.all_ranks = self._parsed_ranks(slice(None))

    def ranks(self, rows: np.ndarray) -> np.ndarray:
        """The rank column of ``rows`` (NaN where it is not a number)."""
        return self.all_ranks[rows] if self.all_ranks is not None else self._parsed_ranks(rows)

    def _parsed_ranks(self, rows: np.ndarray | slice) -> np.ndarray:
        chunk = self.chunk
        texts = bulktext.gather_tokens(
            chunk.buf, chunk.starts[3 :: chunk.fields][rows], chunk.ends[3 :: chunk.fields][rows]
        )
        ranks, bad = bulktext.parse_floats(texts)
        ranks[bad] = np.nan
        return ranks


class _TrecReader:
    """Reads TREC run lines chunk by chunk into per-topic arrays."""

    def __init__(self, path: str, keep_best: int | None, lenient: bool = False) -> None:
        self.path = path
        self.keep_best = keep_best
        self.lenient = lenient
        self.topics: dict[str, _TopicBest] = {}
        self.tag: str | None = None
        self.inexact = False
        self._lines: dict[str, TopicLines] | None = None

    def read(self, chunks: Iterable[tuple[int, bytes]]) -> None:
        """Read strict TREC lines from chunks of whole lines (with their first line's number), then :meth:`finish`."""
        for columns in bulktext.parsed_chunks(chunks, self._parse):
            self.merge(columns)
        self.finish()

    def _parse(self, data: bytes, first_line: int, first_chunk: bool) -> tuple[str, list[_TopicPart]] | None:
        chunk = bulktext.tokenize_strict(
            data, self.path, fields=6, what="run", layout=TREC_LAYOUT, first_line=first_line, first_chunk=first_chunk
        )
        return self.columns(chunk)

    def finish(self) -> None:
        lines = {}
        for topic, best in self.topics.items():
            lines[topic], exact = best.lines_kept()
            self.inexact |= not exact
        self._lines = lines

    def add(self, chunk: bulktext.Chunk) -> None:
        self.merge(self.columns(chunk))

    def columns(self, chunk: bulktext.Chunk) -> tuple[str, list[_TopicPart]] | None:
        """A chunk's lines by topic (None for a chunk without lines); no state is changed."""
        if chunk.num_records == 0:
            return None
        names, codes = bulktext.group_codes(chunk.field_bytes(0))
        ids = chunk.field_bytes(2)
        columns = _ChunkColumns(chunk, ids, bulktext.hash_keys(ids), self._scores(chunk))
        if len(names) == 1:
            groups = [(names[0], np.arange(len(codes)))]
        else:
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
            groups = [(name, order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(names)]
        if self.keep_best is None or all(len(rows) <= self.keep_best for _, rows in groups):
            columns.parse_all_ranks()  # every line is kept
        tag = chunk.first_token(5).decode("utf-8", "surrogateescape")
        return tag, [_topic_part(columns, name, rows, self.keep_best) for name, rows in groups]

    def merge(self, columns: tuple[str, list[_TopicPart]] | None) -> None:
        """Add a chunk's lines to their topics (chunks in file order)."""
        if columns is None:
            return
        tag, parts = columns
        if self.tag is None:
            self.tag = tag
        for part in parts:
            topic = part.name.decode("utf-8", "surrogateescape")
            best = self.topics.get(topic)
            if best is None:
                best = self.topics[topic] = _TopicBest(self.keep_best)
            best.add(part)

    def _scores(self, chunk: bulktext.Chunk) -> np.ndarray:
        texts = chunk.field_bytes(4)
        if self.lenient:
            uniques, inverse = np.unique(texts, return_inverse=True)
            values = np.array(
                [perl_number(t.decode("utf-8", "surrogateescape")) for t in uniques.tolist()], dtype=np.float64
            )
            return values[inverse.ravel()]
        scores, failed = bulktext.parse_floats(texts)
        expected = "a finite number such as 9999, 0.8731 or 4.7e-04"
        if failed.any():
            record = int(np.flatnonzero(failed)[0])
            text = texts[record].decode("utf-8", "replace")
            raise InputFormatError(
                f"score {text!r} is not a number", path=self.path, line=chunk.line_of(record), expected=expected
            )
        infinite = ~np.isfinite(scores)
        if infinite.any():
            record = int(np.flatnonzero(infinite)[0])
            text = texts[record].decode("utf-8", "replace")
            raise InputFormatError(
                f"score {text!r} is out of range", path=self.path, line=chunk.line_of(record), expected=expected
            )
        return scores

    def run(self) -> RunFile:
        name = "stdin" if self.path == "<stdin>" else os.path.basename(self.path)
        run = RunFile(name=name, tag=self.tag or name, path=self.path, source_format="trec")
        run.topics = dict(self._lines or {})
        return run


# patterns compiled on first use (re's cache): the scorer's start-up compiles only what it uses
_TREC_LINE = rb"^\S+[ \t]+\S+[ \t]+\S+[ \t]+\S+[ \t]+\S+[ \t]+\S+[ \t]*\r?$"
_ENTITY = rb"<!ENTITY|&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)[^\s<>&;]{0,40};?"
_LEADING_SPACE = rb"(?:\xef\xbb\xbf)?\s*"


def first_line(data: bytes) -> bytes:
    """The first non-blank line of a file's bytes (at most 1000 bytes of it)."""
    start = re.match(_LEADING_SPACE, data).end()  # type: ignore[union-attr]
    end = data.find(b"\n", start, start + 1000)
    return data[start : end if end >= 0 else start + 1000]


def sniff_format(data: bytes) -> str:
    """What a run file holds by its first bytes: "xml", "trec" (a 6-field line) or "unknown"."""
    if is_xml(data):
        return "xml"
    return "trec" if re.match(_TREC_LINE, first_line(data)) else "unknown"


def is_xml(data: bytes) -> bool:
    """Whether a run file's first bytes are XML (its first non-blank line starts with '<')."""
    return first_line(data)[:1] == b"<"


def find_entities(data: bytes, limit: int = 1000) -> list[tuple[int, str]]:
    """(line, text) of entity declarations and references other than the predefined and character ones."""
    found = []
    for match in re.finditer(_ENTITY, data):
        found.append((data.count(b"\n", 0, match.start()) + 1, match.group(0)[:40].decode("utf-8", "replace")))
        if len(found) >= limit:
            break
    return found


RESULTS_TAG = "videoAdhocSearchResults"
RUN_TAG = "videoAdhocSearchRunResult"
TOPIC_TAG = "videoAdhocSearchTopicResult"
ITEM_TAG = "item"


def _xml_int(element, attribute: str, path: str, expected: str) -> int:
    value = element.get(attribute)
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()):
        problem = "missing" if value is None else f"{value!r} is not a whole number"
        raise InputFormatError(
            f"<{element.tag}> attribute {attribute} {problem}", path=path, line=element.sourceline, expected=expected
        )
    return int(text)


def _unexpected(element, path: str, expected: str) -> InputFormatError:
    return InputFormatError(
        f"unexpected element <{element.tag}>", path=path, line=element.sourceline, expected=expected
    )


class _EntityGuard:
    """A binary stream that refuses entity declarations and references as the XML parser reads it."""

    def __init__(self, stream, path: str) -> None:
        self.stream = stream
        self.path = path
        self.tail = b""
        self.lines = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size if size and size > 0 else 1 << 20)
        window = self.tail + data
        found = find_entities(window, limit=1)
        if found:
            line, text = found[0]
            raise InputFormatError(
                f"entity {text} in the XML (entity declarations and references are not allowed)",
                path=self.path,
                line=self.lines - self.tail.count(b"\n") + line,
            )
        self.lines += data.count(b"\n")
        self.tail = window[-64:]
        return data


class _XmlRunBuilder:
    """One ``videoAdhocSearchRunResult`` as it streams by: items per topic, in seqNum order at the end."""

    def __init__(self, element, path: str, lenient: bool) -> None:
        self.pid = element.get("pid") or "xml"
        self.priority = element.get("priority")
        self.path = path
        self.lenient = lenient
        self.topics: dict[str, tuple[array.array, list[str]]] = {}
        self.topic: tuple[array.array, list[str]] | None = None
        self.seen: dict[int, int] = {}
        self.tnum = ""

    def start_topic(self, element) -> None:
        from avsbench.data.topics import qrels_topic_id

        topic = qrels_topic_id(_xml_int(element, "tNum", self.path, "the plain topic number, e.g. 611"))
        if topic in self.topics and not self.lenient:
            raise InputFormatError(
                f"topic {element.get('tNum')} appears twice in one run", path=self.path, line=element.sourceline
            )
        self.topic = self.topics.setdefault(topic, (array.array("q"), []))
        self.seen = {}
        self.tnum = element.get("tNum")

    def item(self, element) -> None:
        assert self.topic is not None
        seq = _xml_int(element, "seqNum", self.path, "the rank 1, 2, ...")
        shot = (element.get("shotId") or "").strip()
        if not shot:
            raise InputFormatError("<item> without shotId", path=self.path, line=element.sourceline)
        if seq in self.seen and not self.lenient:
            raise InputFormatError(
                f"seqNum {seq} used twice in topic {self.tnum} (first on line {self.seen[seq]})",
                path=self.path,
                line=element.sourceline,
            )
        self.seen.setdefault(seq, element.sourceline)
        self.topic[0].append(seq)
        self.topic[1].append(shot)

    def run(self, name: str) -> RunFile:
        run = RunFile(name=name, tag=self.pid, path=self.path, source_format="xml")
        for topic, (seqs, shots) in self.topics.items():
            order = np.argsort(
                np.frombuffer(seqs, dtype=np.int64) if len(seqs) else np.zeros(0, np.int64), kind="stable"
            )
            n = len(shots)
            ids = _encode_ids(shots)[order] if n else _encode_ids(())
            run.topics[topic] = TopicLines.from_arrays(ids, np.arange(n, 0, -1, dtype=np.float64))
        return run


def _read_xml(source, path: str, lenient: bool) -> list[RunFile]:
    """TRECVID XML runs, parsed as a stream (elements cleared as they go); ``source``: bytes or a binary file."""
    from lxml import etree  # only XML runs need lxml

    stream = _EntityGuard(io.BytesIO(source) if isinstance(source, bytes) else source, path)
    events = etree.iterparse(
        stream,
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
        huge_tree=False,
    )
    builders: list[_XmlRunBuilder] = []
    depth = 0
    top = 0  # depth of the run elements: 0 (the root is a run) or 1
    try:
        for event, element in events:
            if event == "start":
                if depth == 0:
                    top = _xml_root(element, builders, path, lenient)
                else:
                    _xml_child(element, depth - top, builders, path, lenient)
                depth += 1
                continue
            depth -= 1
            level = depth - top
            if level == 2:
                builders[-1].item(element)
            if level >= 1:  # items and topics are dropped once read
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise InputFormatError(f"XML not well-formed: {exc.msg}", path=path, line=exc.lineno or None) from None
    if not builders:
        raise InputFormatError(f"no <{RUN_TAG}> in the XML file", path=path, line=1)
    base = os.path.basename(path)
    return [
        b.run(base if len(builders) == 1 else f"{base}:{b.pid}_{b.priority or i}") for i, b in enumerate(builders, 1)
    ]


def _xml_root(element, builders: list[_XmlRunBuilder], path: str, lenient: bool) -> int:
    """Check the root element; the depth of the run elements (0: the root is the run)."""
    if element.tag == RUN_TAG:
        builders.append(_XmlRunBuilder(element, path, lenient))
        return 0
    if element.tag != RESULTS_TAG:
        raise _unexpected(element, path, f"root element <{RESULTS_TAG}>")
    return 1


def _xml_child(element, level: int, builders: list[_XmlRunBuilder], path: str, lenient: bool) -> None:
    """Check an opening tag at its level under the runs (0 run, 1 topic, 2 item); start a run or a topic."""
    if level == 0:
        if element.tag != RUN_TAG:
            raise _unexpected(element, path, f"<{RUN_TAG}> elements")
        builders.append(_XmlRunBuilder(element, path, lenient))
    elif level == 1:
        if element.tag != TOPIC_TAG:
            raise _unexpected(element, path, f"<{TOPIC_TAG}> elements")
        builders[-1].start_topic(element)
    elif level == 2:
        if element.tag != ITEM_TAG:
            raise _unexpected(element, path, f"<{ITEM_TAG} seqNum=... shotId=.../>")
    else:
        raise _unexpected(element, path, f"<{ITEM_TAG} seqNum=... shotId=.../> without children")


SCORE_DECIMALS = 10
_RUN_ID_ODD = r"[^A-Za-z0-9_.\-]+"


def safe_run_id(text: str) -> str:
    """A run tag without whitespace or odd characters (``my model`` -> ``my_model``): one field of
    a TREC line, never a line break. Every command that writes a run tag cleans it here."""
    cleaned = re.sub(_RUN_ID_ODD, "_", text).strip("_.")
    return cleaned or "avsbench"


def strictly_decreasing_scores(scores: Iterable[float]) -> list[str]:
    """Scores (sorted non-increasing) as decimal strings with :data:`SCORE_DECIMALS` decimals that
    strictly decrease: where two consecutive scores are equal at that precision (ties, ordered by
    shot id descending like the scorer does), the lower one is written 1e-10 below the one above,
    so a reader ordering by score gets exactly this order. The adjustment is at most 1e-10 per tied
    shot, far below any score difference that matters."""
    scale = 10**SCORE_DECIMALS
    out: list[str] = []
    previous: int | None = None
    for value in scores:
        q = round(float(value) * scale)
        if previous is not None and q >= previous:
            q = previous - 1
        previous = q
        sign = "-" if q < 0 else ""
        whole, frac = divmod(abs(q), scale)
        out.append(f"{sign}{whole}.{frac:0{SCORE_DECIMALS}d}")
    return out
