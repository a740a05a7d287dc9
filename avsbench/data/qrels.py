"""NIST stratified, sampled qrels (``topic 0 shotId stratum judgment``), kept exactly as sample_eval.pl keeps them.

Judgment ``j``: ``j > 0`` judged relevant with gain ``j``; ``j == 0`` judged not relevant;
``j < 0`` (NIST uses -1) in the pool (the stratum) but not sampled for judging.

Per topic and stratum the script counts every record (a duplicate (topic, shot) record
counts twice): ``N`` pool size, ``n`` sampled (``j >= 0``), ``r`` sampled relevant
(``j > 0``) and ``r`` per judgment string. The shot -> judgment and shot -> stratum lookups
keep the last record. Topic, shot and stratum keys are exact strings ("3" != "03").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from avsbench.data.textrecords import RecordTokens, perl_number, read_file_bytes, split_records, topic_sort_key
from avsbench.errors import InputFormatError, UnknownIdError

if TYPE_CHECKING:
    import pandas as pd

    from avsbench.interop import QrelsRecord

QRELS_LAYOUT = "topic 0 shotId stratum judgment"
_INTEGER = re.compile(r"[+-]?\d+")
_LOG2 = math.log(2)


def discount(rank: float) -> float:
    """sample_eval's DCG discount, computed as it does: ln(rank + 1) / ln 2."""
    return math.log(rank + 1) / _LOG2


class ShotCodes(NamedTuple):
    """A topic's pool as small integer codes (see :attr:`QrelsTopic.shot_codes`)."""

    code: dict[str, int]  # shot -> code
    stratum: np.ndarray  # code -> stratum index (-1: not in the pool)
    judgment: np.ndarray  # code -> numeric judgment (0 for shots outside the pool)
    outside_pool: int  # the code of every shot not in the qrels


class QrelsTopic:
    """The judgments of one topic with sample_eval's per-stratum statistics."""

    __slots__ = ("topic", "judgment", "stratum", "pool_size", "sampled", "relevant", "grade_counts", "_derived", "_codes", "_idcg")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.judgment: dict[str, float] = {}  # shot -> numeric judgment (last record wins)
        self.stratum: dict[str, str] = {}  # shot -> stratum (last record wins)
        self.pool_size: dict[str, int] = {}  # N: records per stratum
        self.sampled: dict[str, int] = {}  # n: records with j >= 0
        self.relevant: dict[str, int] = {}  # r: records with j > 0
        self.grade_counts: dict[str, dict[str, int]] = {}  # stratum -> judgment string -> records (j > 0)
        self._derived: tuple[tuple[str, ...], float] | None = None
        self._codes: ShotCodes | None = None
        self._idcg: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"QrelsTopic({self.topic!r}, {len(self.judgment)} shots, strata {list(self.strata)})"

    def _derive(self) -> tuple[tuple[str, ...], float]:
        if self._derived is None:
            strata = tuple(sorted(self.pool_size))
            estimate = 0
            for s in strata:
                n = self.sampled.get(s, 0)
                if n != 0:
                    estimate += self.relevant.get(s, 0) * self.pool_size[s] / n
            self._derived = (strata, float(estimate))
        return self._derived

    @property
    def strata(self) -> tuple[str, ...]:
        """The topic's strata in ascending string order (the order of every sum over strata)."""
        return self._derive()[0]

    @property
    def estimated_relevant(self) -> float:
        """R-hat: sum over strata of r * N / n (strata with n = 0 skipped)."""
        return self._derive()[1]

    @property
    def shot_codes(self) -> ShotCodes:
        """One lookup per shot for the scorer: shot -> code, code -> (stratum index, judgment)."""
        if self._codes is None:
            index = {s: i for i, s in enumerate(self.strata)}
            pairs = list(zip(map(index.__getitem__, self.stratum.values()), map(self.judgment.__getitem__, self.stratum)))
            unique = {pair: code for code, pair in enumerate(dict.fromkeys(pairs))}
            codes = dict(zip(self.stratum, map(unique.__getitem__, pairs)))
            self._codes = ShotCodes(
                codes,
                np.array([s for s, _ in unique] + [-1], dtype=np.intp),
                np.array([j for _, j in unique] + [0.0], dtype=np.float64),
                len(unique),
            )
        return self._codes

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
        return set(self.judgment)

    @property
    def judged(self) -> set[str]:
        """Shots that were sampled and judged (j >= 0)."""
        return {d for d, j in self.judgment.items() if j >= 0}

    @property
    def relevant_shots(self) -> set[str]:
        """Shots judged relevant (j > 0)."""
        return {d for d, j in self.judgment.items() if j > 0}


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
        total = 0
        for topic in sorted(self.topics):
            total += self.topics[topic].estimated_relevant
        return float(total)

    @classmethod
    def read(cls, path: str | Path, *, lenient: bool = False) -> Qrels:
        """Read a qrels file. ``lenient`` reproduces sample_eval.pl's silent parsing (see textrecords)."""
        return cls.from_bytes(read_file_bytes(path, "qrels"), path, lenient=lenient)

    @classmethod
    def from_bytes(cls, data: bytes, path: str | Path = "<qrels>", *, lenient: bool = False) -> Qrels:
        records = split_records(data, path, fields=5, what="qrels", layout=QRELS_LAYOUT, lenient=lenient)
        topics = _build_topics(records)
        for qt in topics.values():  # build the scorer's lookup tables now, not on the first evaluation
            qt.shot_codes  # noqa: B018
            qt.ideal_dcg()
        return cls(topics, str(path))


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


def _judgment_values(records: RecordTokens, judgments: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for text in set(judgments):
        if not records.lenient and not _INTEGER.fullmatch(text):
            record = judgments.index(text)
            raise InputFormatError(
                f"judgment {text!r} is not an integer",
                path=records.path,
                line=records.line_of(record),
                expected="1 (relevant), 0 (not relevant) or -1 (not sampled)",
            )
        values[text] = perl_number(text)
    return values


def _build_topics(records: RecordTokens) -> dict[str, QrelsTopic]:
    topic_col = records.column(0)
    shots = records.column(2)
    strata = records.column(3)
    judgments = records.column(4)
    values = _judgment_values(records, judgments)

    topics: dict[str, QrelsTopic] = {}
    start = 0
    # consecutive records of one topic are merged in bulk; later blocks update earlier ones
    for topic, block in groupby(topic_col):
        end = start + len(list(block))
        qt = topics.get(topic)
        if qt is None:
            qt = topics[topic] = QrelsTopic(topic)
        qt.judgment.update(zip(shots[start:end], map(values.__getitem__, judgments[start:end])))
        qt.stratum.update(zip(shots[start:end], strata[start:end]))
        start = end

    for (topic, stratum, text), count in Counter(zip(topic_col, strata, judgments)).items():
        qt = topics[topic]
        j = values[text]
        qt.pool_size[stratum] = qt.pool_size.get(stratum, 0) + count
        if j >= 0:
            qt.sampled[stratum] = qt.sampled.get(stratum, 0) + count
        if j > 0:
            qt.relevant[stratum] = qt.relevant.get(stratum, 0) + count
            grades = qt.grade_counts.setdefault(stratum, {})
            grades[text] = grades.get(text, 0) + count
    return topics
