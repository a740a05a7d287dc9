"""NIST stratified, sampled qrels (``topic 0 shotId stratum judgment``), kept exactly as sample_eval.pl keeps them.

Judgment ``j``: ``j > 0`` judged relevant with gain ``j``; ``j == 0`` judged not relevant;
``j < 0`` (NIST uses -1) in the pool (the stratum) but not sampled for judging.

Per topic and stratum the script counts every record (a duplicate (topic, shot) record
counts twice): ``N`` pool size, ``n`` sampled (``j >= 0``), ``r`` sampled relevant
(``j > 0``) and ``r`` per judgment string. The shot -> judgment and shot -> stratum lookups
keep the last record. Topic, shot and stratum keys are exact strings ("3" != "03").

Files are parsed in bulk (:mod:`avsbench.data.bulktext`): each topic's pool is held as arrays
(shot ids sorted by a 64-bit key, with stratum index and judgment), and the parsed form is
kept in a binary cache (:mod:`avsbench.data.qrels_cache`) keyed by the file's size, mtime and
content hash.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from avsbench.data import bulktext
from avsbench.data.textrecords import perl_number, split_records, topic_sort_key
from avsbench.errors import InputFormatError, UnknownIdError

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from avsbench.interop import QrelsRecord

QRELS_LAYOUT = "topic 0 shotId stratum judgment"
_INTEGER = r"[+-]?\d+"
_LOG2 = math.log(2)


def discount(rank: float) -> float:
    """sample_eval's DCG discount, computed as it does: ln(rank + 1) / ln 2."""
    return math.log(rank + 1) / _LOG2


class QrelsTopic:
    """The judgments of one topic with sample_eval's per-stratum statistics.

    The pool is held as arrays aligned on ``keys`` (sorted 64-bit keys of the shot ids): ``shot_ids``
    (bytes), ``stratum_index`` (index into :attr:`strata`) and ``judgments`` (numeric, last record wins).
    """

    __slots__ = (
        "_idcg",
        "appearance",
        "_judgment",
        "_stratum",
        "_unique_keys",
        "estimated_relevant",
        "grade_counts",
        "judgments",
        "keys",
        "pool_size",
        "relevant",
        "sampled",
        "shot_ids",
        "strata",
        "stratum_index",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        strata: tuple[str, ...],
        counts: dict[str, tuple[int, int, int]],
        grade_counts: dict[str, dict[str, int]],
        arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        ideal_dcg: float | None = None,
        appearance: np.ndarray | None = None,
    ) -> None:
        self.topic = topic
        self.strata = strata  # ascending string order (the order of every sum over strata)
        self.pool_size = {s: c[0] for s, c in counts.items()}  # N: records per stratum
        self.sampled = {s: c[1] for s, c in counts.items() if c[1]}  # n: records with j >= 0
        self.relevant = {s: c[2] for s, c in counts.items() if c[2]}  # r: records with j > 0
        self.grade_counts = grade_counts  # stratum -> judgment string -> records (j > 0)
        self.keys, self.shot_ids, self.stratum_index, self.judgments = arrays
        # positions in the arrays, shots in order of first appearance in the file
        self.appearance = np.arange(len(self.keys), dtype=np.int64) if appearance is None else appearance
        self._unique_keys = bool(self.keys.size < 2 or (self.keys[1:] != self.keys[:-1]).all())
        estimate: float = 0
        for s in strata:
            n = self.sampled.get(s, 0)
            if n != 0:
                estimate += self.relevant.get(s, 0) * self.pool_size[s] / n
        self.estimated_relevant = float(estimate)  # R-hat: sum over strata of r * N / n
        self._idcg: dict[int, float] = {} if ideal_dcg is None else {1000: ideal_dcg}  # max_results -> ideal DCG
        self._judgment: dict[str, float] | None = None
        self._stratum: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"QrelsTopic({self.topic!r}, {len(self.keys)} shots, strata {list(self.strata)})"

    def lookup(self, shot_ids: np.ndarray, keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stratum index (-1: not in the pool) and judgment (0 outside the pool) of each shot id."""
        if keys is None:
            keys = bulktext.hash_keys(shot_ids)
        if not self._unique_keys:  # two ids of this pool share a key: compare the ids themselves
            return self._lookup_by_id(shot_ids)
        stratum = np.full(len(keys), -1, dtype=self.stratum_index.dtype)
        judgment = np.zeros(len(keys))
        if len(self.keys) == 0:
            return stratum, judgment
        order = np.argsort(keys)  # searching keys in ascending order is several times faster
        at = np.minimum(np.searchsorted(self.keys, keys[order]), len(self.keys) - 1)
        hit = self.keys[at] == keys[order]
        rows, at = order[hit], at[hit]
        found = self.shot_ids[at] == shot_ids[rows]  # a key shared by two ids is no match
        stratum[rows[found]] = self.stratum_index[at[found]]
        judgment[rows[found]] = self.judgments[at[found]]
        return stratum, judgment

    def _lookup_by_id(self, shot_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = {s: i for i, s in enumerate(self.shot_ids.tolist())}
        at = np.array([index.get(s, -1) for s in shot_ids.tolist()], dtype=np.int64)
        found = at >= 0
        return np.where(found, self.stratum_index[at], -1), np.where(found, self.judgments[at], 0.0)

    @property
    def judgment(self) -> dict[str, float]:
        """shot -> numeric judgment (last record wins)."""
        if self._judgment is None:
            at = self.appearance
            self._judgment = dict(zip(_decoded(self.shot_ids[at]), self.judgments[at].tolist()))
        return self._judgment

    @property
    def stratum(self) -> dict[str, str]:
        """shot -> stratum (last record wins)."""
        if self._stratum is None:
            at = self.appearance
            self._stratum = dict(
                zip(_decoded(self.shot_ids[at]), (self.strata[i] for i in self.stratum_index[at].tolist()))
            )
        return self._stratum

    def stratum_weight(self, stratum: str) -> float:
        """r * N / n of a stratum (its share of R-hat); 0 when nothing of it was sampled."""
        n = self.sampled.get(stratum, 0)
        return self.relevant.get(stratum, 0) * self.pool_size[stratum] / n if n != 0 else 0.0

    def ideal_dcg(self, max_results: int = 1000) -> float:
        """The ideal DCG of infNDCG, built from the estimated (fractional) count of each grade."""
        cached = self._idcg.get(max_results)
        if cached is not None:
            return cached
        per_grade: dict[str, float] = {}
        for s in self.strata:
            n = self.sampled.get(s, 0)
            for grade, count in self.grade_counts.get(s, {}).items():
                if n != 0:
                    per_grade[grade] = per_grade.get(grade, 0) + count * self.pool_size[s] / n
        if len(per_grade) == 1:  # one grade (AVS): the terms k = 1, 2, ... summed in order, as the loop does
            ((grade, estimate),) = per_grade.items()
            count = min(math.floor(estimate), max_results) if estimate >= 1 else 0
            terms = perl_number(grade) / discount_table(max_results)[1 : count + 1]
            idcg = float(np.cumsum(terms)[-1]) if count else 0.0
            self._idcg[max_results] = idcg
            return idcg
        idcg = 0.0
        start = 0.0
        for grade in sorted(per_grade, reverse=True):
            gain = perl_number(grade)
            estimate = per_grade[grade]
            k = start + 1
            while k <= start + estimate:
                idcg += gain / discount(k)
                if k >= max_results:
                    break
                k += 1
            start += estimate
        self._idcg[max_results] = idcg
        return idcg

    @property
    def pool(self) -> set[str]:
        """Every shot of the topic's pool (sampled or not)."""
        return set(_decoded(self.shot_ids))

    @property
    def judged(self) -> set[str]:
        """Shots that were sampled and judged (j >= 0)."""
        return set(_decoded(self.shot_ids[self.judgments >= 0]))

    @property
    def relevant_shots(self) -> set[str]:
        """Shots judged relevant (j > 0)."""
        return set(_decoded(self.shot_ids[self.judgments > 0]))


@functools.lru_cache(maxsize=8)
def discount_table(max_results: int) -> np.ndarray:
    """discount(k) for ranks k = 0..max_results (entry 0 unused)."""
    return np.array([1.0] + [discount(k) for k in range(1, max_results + 1)])


def _decoded(ids: np.ndarray) -> list[str]:
    return [s.decode("utf-8", "surrogateescape") for s in ids.tolist()]


class Qrels:
    """A qrels file: topic id -> :class:`QrelsTopic`, topics in order of first appearance."""

    def __init__(self, topics: dict[str, QrelsTopic], path: str | None = None) -> None:
        self.topics = topics
        self.path = path

    def __repr__(self) -> str:
        return f"Qrels({self.path!r}, {len(self.topics)} topics)"

    def __len__(self) -> int:
        return len(self.topics)

    def __contains__(self, topic: object) -> bool:
        return topic in self.topics

    def __iter__(self) -> Iterator[str]:
        return iter(self.topics)

    def __getitem__(self, topic: str) -> QrelsTopic:
        try:
            return self.topics[topic]
        except KeyError:
            raise UnknownIdError(f"topic {topic!r} is not in the qrels", path=self.path) from None

    @property
    def topic_ids(self) -> list[str]:
        """Topic ids in sample_eval's output order (numeric)."""
        return sorted(self.topics, key=topic_sort_key)

    def pool(self, topic: str) -> set[str]:
        return self[topic].pool

    def judged(self, topic: str) -> set[str]:
        return self[topic].judged

    def relevant(self, topic: str) -> set[str]:
        return self[topic].relevant_shots

    def estimated_relevant(self, topic: str) -> float:
        return self[topic].estimated_relevant

    @property
    def total_estimated_relevant(self) -> float:
        """Sum of R-hat over all topics in string order (sample_eval's ``inum_rel all``)."""
        total: float = 0
        for topic in sorted(self.topics):
            total += self.topics[topic].estimated_relevant
        return float(total)

    @classmethod
    def read(cls, path: str | Path, *, lenient: bool = False, cache: bool = True) -> Qrels:
        """Read a qrels file (gzip read transparently, ``-`` for standard input).

        ``lenient`` reproduces sample_eval.pl's silent parsing (see textrecords). With ``cache``
        the parsed form is kept in the qrels cache and reused while the file is unchanged.
        """
        if cache and str(path) != bulktext.STDIN_NAME:
            from avsbench.data import qrels_cache

            return qrels_cache.read_cached(path, lenient=lenient)
        return cls.parse(path, lenient=lenient)

    @classmethod
    def parse(cls, path: str | Path, *, lenient: bool = False) -> Qrels:
        """Parse a qrels file without the cache."""
        label = bulktext.source_label(path)
        if lenient:
            return cls.from_bytes(bulktext.read_all_bytes(path, "qrels"), label, lenient=True)
        builder = _QrelsBuilder(label)

        def parse(data: bytes, first_line: int, first_chunk: bool) -> tuple[np.ndarray, ...]:
            chunk = bulktext.tokenize_strict(
                data, label, fields=5, what="qrels", layout=QRELS_LAYOUT, first_line=first_line, first_chunk=first_chunk
            )
            return builder.columns(chunk)

        for columns in bulktext.parsed_chunks(bulktext.line_chunks(path, "qrels"), parse):
            builder.merge(columns)
        return builder.build()

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path = "<qrels>", *, lenient: bool = False) -> Qrels:
        label = str(path)
        builder = _QrelsBuilder(label, lenient=lenient)
        if lenient:
            records = split_records(data, label, fields=5)
            builder.add(
                bulktext.chunk_from_lenient_tokens(
                    [t.encode("utf-8", "surrogateescape") for t in records.tokens], 5, label
                )
            )
        else:
            builder.add(
                bulktext.tokenize_strict(
                    data, label, fields=5, what="qrels", layout=QRELS_LAYOUT, first_line=1, first_chunk=True
                )
            )
        return builder.build()

    @classmethod
    def from_records(cls, records: Iterable[Any], path: str = "<records>") -> Qrels:
        """Qrels from ``(topic, shot, stratum, judgment)`` tuples, read as the lines of a qrels file."""
        from avsbench.interop import qrels_from_records

        return qrels_from_records(records, path)

    def to_records(self) -> Iterator[QrelsRecord]:
        """One ``QrelsRecord(topic, shot, stratum, judgment)`` per judged shot."""
        from avsbench.interop import qrels_to_records

        return qrels_to_records(self)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per judged shot: ``topic, shot, stratum, judgment``."""
        from avsbench.interop import qrels_to_dataframe

        return qrels_to_dataframe(self)


class _QrelsBuilder:
    """Collects the columns of a qrels file chunk by chunk, then builds the per-topic tables."""

    def __init__(self, path: str, lenient: bool = False) -> None:
        self.path = path
        self.lenient = lenient
        self.topic_names: dict[bytes, int] = {}
        self.stratum_names: dict[bytes, int] = {}  # in order of first appearance
        self.judgment_names: dict[bytes, int] = {}
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.rows = 0

    def add(self, chunk: bulktext.Chunk) -> None:
        self.merge(self.columns(chunk))

    def columns(self, chunk: bulktext.Chunk) -> tuple[Any, ...]:
        """A chunk's columns: topic, stratum and judgment names with each record's code into them, shots and
        their keys (judgments checked)."""
        names, local = bulktext.group_codes(chunk.field_bytes(0))
        shots = chunk.field_bytes(2)
        strata = _sorted_codes(chunk.field_bytes(3))
        judgments = _sorted_codes(chunk.field_bytes(4))
        if not self.lenient:
            self._check_judgments(chunk, *judgments)
        return (names, local), shots, bulktext.hash_keys(shots), strata, judgments

    def merge(self, columns: tuple[Any, ...]) -> None:
        """Add a chunk's columns (chunks in file order: topic codes follow first appearance)."""
        topics, shots, keys, strata, judgments = columns
        coded = [
            _recoded(names, codes, table)
            for (names, codes), table in (
                (topics, self.topic_names),
                (strata, self.stratum_names),
                (judgments, self.judgment_names),
            )
        ]
        self.parts.append((coded[0], shots, keys, coded[1], coded[2]))
        self.rows += len(shots)

    def _check_judgments(self, chunk: bulktext.Chunk, names: list[bytes], codes: np.ndarray) -> None:
        for code, text in enumerate(names):
            if not re.fullmatch(_INTEGER, text.decode("utf-8", "replace")):
                record = int(np.flatnonzero(codes == code)[0])
                raise InputFormatError(
                    f"judgment {text.decode('utf-8', 'replace')!r} is not an integer",
                    path=self.path,
                    line=chunk.line_of(record),
                    expected="1 (relevant), 0 (not relevant) or -1 (not sampled)",
                )

    def build(self) -> Qrels:
        topics = np.concatenate([p[0] for p in self.parts]) if self.parts else np.zeros(0, np.int64)
        shots = _concat_bytes([p[1] for p in self.parts])
        keys = np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0, np.uint64)
        stratum_names, stratum_codes = _in_byte_order(self.stratum_names, [p[3] for p in self.parts])
        judgment_names, judgment_codes = _in_byte_order(self.judgment_names, [p[4] for p in self.parts])
        self.parts = []
        values = np.array([perl_number(j.decode("utf-8", "surrogateescape")) for j in judgment_names], dtype=np.float64)
        names = [n.decode("utf-8", "surrogateescape") for n in stratum_names]
        labels = [j.decode("utf-8", "surrogateescape") for j in judgment_names]
        counts = _stratum_counts(topics, stratum_codes, judgment_codes, values, len(names), len(labels))
        order = _stable_order(topics, len(self.topic_names))
        bounds = np.searchsorted(topics[order], np.arange(len(self.topic_names) + 1))
        table: dict[str, QrelsTopic] = {}
        for code, topic in enumerate(self.topic_names):
            rows = order[bounds[code] : bounds[code + 1]]
            table[topic.decode("utf-8", "surrogateescape")] = _topic_table(
                topic.decode("utf-8", "surrogateescape"),
                rows,
                keys,
                shots,
                stratum_codes,
                judgment_codes,
                values,
                names,
                labels,
                counts.get(code, {}),
            )
        return Qrels(table, self.path)


def _recoded(names: list[bytes], codes: np.ndarray, table: dict[bytes, int]) -> np.ndarray:
    """A chunk's codes into ``names`` as codes into ``table`` (name -> code, in order of first appearance)."""
    to_table = np.array([table.setdefault(n, len(table)) for n in names], dtype=np.int64)
    return to_table[codes] if len(codes) else codes.astype(np.int64)


def _in_byte_order(table: dict[bytes, int], parts: list[np.ndarray]) -> tuple[list[bytes], np.ndarray]:
    """The names of ``table`` in byte order, and the codes of ``parts`` (into ``table``) renumbered in that order."""
    names = sorted(table)
    renumber = np.zeros(max(len(table), 1), dtype=np.int64)
    renumber[[table[n] for n in names]] = np.arange(len(names))
    return names, renumber[np.concatenate(parts)] if parts else np.zeros(0, np.int64)


def _stable_order(codes: np.ndarray, count: int) -> np.ndarray:
    """Indices sorting ``codes`` (0 <= code < count), equal codes in file order (radix sort for small counts)."""
    if count <= 1 << 16:
        codes = codes.astype(np.uint8 if count <= 1 << 8 else np.uint16)
    return np.argsort(codes, kind="stable")


def _concat_bytes(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype="S1")
    width = max(p.dtype.itemsize for p in parts)
    return np.concatenate([p.astype(f"S{width}") for p in parts])


def _sorted_codes(values: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """Distinct byte strings in ascending byte order and each row's index into them."""
    if values.dtype.itemsize <= 8 and len(values):
        padded = np.zeros((len(values), 8), dtype=np.uint8)
        padded[:, : values.dtype.itemsize] = values.view(np.uint8).reshape(len(values), -1)
        packed = padded.view(">u8").ravel().astype(np.uint64)  # byte order = numeric order
        found: list[int] = []
        rest = packed
        while rest.size and len(found) < 16:  # few distinct values (strata, judgments): one pass each
            found.append(int(rest[0]))
            rest = rest[rest != rest[0]]
        if rest.size == 0:
            codes = np.zeros(len(packed), dtype=np.int64)
            for i, value in enumerate(sorted(found)[1:], 1):
                codes[packed == value] = i
            return [u.to_bytes(8, "big").rstrip(b"\0") for u in sorted(found)], codes
        uniques, inverse = np.unique(packed, return_inverse=True)
        return [int(u).to_bytes(8, "big").rstrip(b"\0") for u in uniques.tolist()], inverse.ravel()
    uniques, inverse = np.unique(values, return_inverse=True)
    return [u for u in uniques.tolist()], inverse.ravel()


def _stratum_counts(topics, strata, judgments, values, num_strata: int, num_judgments: int) -> dict[int, dict]:
    """topic code -> stratum index -> (N, n, r, {judgment index: records with j > 0})."""
    combined = (topics * num_strata + strata) * num_judgments + judgments
    size = (int(topics.max(initial=0)) + 1) * num_strata * num_judgments
    if size <= 1 << 22:
        tally = np.bincount(combined, minlength=size)
        cells = np.flatnonzero(tally)
        records = tally[cells]
    else:
        cells, records = np.unique(combined, return_counts=True)
    out: dict[int, dict] = {}
    for cell, count in zip(cells.tolist(), records.tolist()):
        j = cell % num_judgments
        rest = cell // num_judgments
        topic, stratum = divmod(rest, num_strata)
        entry = out.setdefault(topic, {}).setdefault(stratum, [0, 0, 0, {}])
        entry[0] += count
        if values[j] >= 0:
            entry[1] += count
        if values[j] > 0:
            entry[2] += count
            entry[3][j] = entry[3].get(j, 0) + count
    return out


def _topic_table(topic, rows, keys, shots, strata, judgments, values, names, labels, counts) -> QrelsTopic:
    """One topic's :class:`QrelsTopic` from its rows (in file order): last record per shot wins."""
    local = sorted(counts)  # stratum codes are in string order already
    topic_keys = keys[rows]
    order = np.argsort(topic_keys)
    sorted_keys = topic_keys[order]
    heads = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1]))) if len(order) else order
    chosen = rows[np.maximum.reduceat(order, heads)] if len(order) else rows  # a shot's last record wins
    appearance = np.argsort(np.minimum.reduceat(order, heads)) if len(order) else order  # by first record
    remap = np.full(len(names), -1, dtype=np.int16)
    remap[local] = np.arange(len(local), dtype=np.int16)
    same = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if same.size and (shots[rows[order[same]]] != shots[rows[order[same + 1]]]).any():
        return _topic_table_by_id(topic, rows, keys, shots, strata, judgments, values, names, labels, counts, remap)
    columns = (keys[chosen], shots[chosen], remap[strata[chosen]], values[judgments[chosen]])
    return _qrels_topic(topic, local, names, labels, counts, columns, appearance)


def _topic_table_by_id(topic, rows, keys, shots, strata, judgments, values, names, labels, counts, remap) -> QrelsTopic:
    """Same as :func:`_topic_table` when two different ids share a key: dedupe on the ids themselves."""
    last_row = {s: r for r, s in zip(rows.tolist(), shots[rows].tolist())}  # in order of first appearance
    chosen = np.array(list(last_row.values()), dtype=np.int64)
    columns = (keys[chosen], shots[chosen], remap[strata[chosen]], values[judgments[chosen]])
    return _qrels_topic(topic, sorted(counts), names, labels, counts, columns)


def _qrels_topic(topic, local, names, labels, counts, columns, appearance=None) -> QrelsTopic:
    """The :class:`QrelsTopic` of the strata ``local`` (codes into ``names``) and the chosen rows' ``columns``."""
    stat = {names[c]: tuple(counts[c][:3]) for c in local}
    grades = {names[c]: {labels[j]: k for j, k in counts[c][3].items()} for c in local if counts[c][3]}
    return QrelsTopic(topic, tuple(names[c] for c in local), stat, grades, columns, appearance=appearance)
