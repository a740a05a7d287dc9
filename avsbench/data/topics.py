"""AVS topics, topic-id conventions and the year -> collection registry.

Topic files and XML submissions use the plain topic number (611); qrels and TREC run files
use "1" + number (1611). Convert only with :func:`qrels_topic_id` / :func:`plain_topic_id`;
a topic typed by a user (either form) is read with :func:`topic_number`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from avsbench.errors import ConfigError, InputFormatError, MissingDataError, UnknownIdError

if TYPE_CHECKING:
    from pathlib import Path

IACC3 = "iacc.3"
V3C1 = "v3c1"


def qrels_topic_id(number: int | str) -> str:
    """Plain topic number (611) -> the id used in qrels and TREC runs ("1611")."""
    return "1" + str(int(number))


def topic_number(value: int | str) -> int:
    """A topic as a user gives it -> its plain number: 611, "611", 1611 and "1611" (the qrels and
    run id that ``score`` prints) all give 611. Every command option and API argument that names
    a topic goes through here."""
    text = str(value).strip()
    number = int(text) if text.isascii() and text.isdigit() and not isinstance(value, bool) else -1
    if 1000 < number < 2000:
        number -= 1000
    if not 0 < number < 1000:
        raise ConfigError(f"bad topic {value!r}", expected="a topic number such as 611, or its run/qrels id 1611")
    return number


def plain_topic_id(qrels_id: str) -> int:
    """Qrels/TREC topic id ("1611") -> plain topic number (611)."""
    if len(qrels_id) < 2 or not qrels_id.isdigit() or not qrels_id.startswith("1"):
        raise UnknownIdError(
            f"topic id {qrels_id!r} is not a qrels-style AVS topic id",
            expected='"1" followed by the topic number, e.g. 1611',
        )
    return int(qrels_id[1:])


@dataclass(frozen=True)
class Topic:
    """One AVS topic: its plain number, its text and the topic set it belongs to."""

    number: int
    text: str
    set_name: str

    @property
    def qrels_id(self) -> str:
        return qrels_topic_id(self.number)


@dataclass(frozen=True)
class TopicSet:
    """An ordered set of topics read from a topic file (``<tNum> <query>`` per line)."""

    name: str
    topics: tuple[Topic, ...]
    source: str = ""
    sha256: str = ""

    def __iter__(self) -> Iterator[Topic]:
        return iter(self.topics)

    def __len__(self) -> int:
        return len(self.topics)

    def __contains__(self, number: object) -> bool:
        return any(t.number == number for t in self.topics)

    def get(self, number: int | str) -> Topic:
        """The topic ``number`` (611 or its run/qrels id 1611, see :func:`topic_number`)."""
        plain = topic_number(number)
        for t in self.topics:
            if t.number == plain:
                return t
        raise UnknownIdError(f"topic {plain} is not in topic set {self.name}", path=self.source or None)

    @property
    def numbers(self) -> list[int]:
        return [t.number for t in self.topics]

    @classmethod
    def read(cls, path: str | Path, name: str | None = None) -> TopicSet:
        """Parse a topic file: one ``<number> <text>`` per line, blank lines ignored."""
        import hashlib  # only reading a topic file needs these (not scoring)
        from pathlib import Path

        path = Path(path)
        if not path.is_file():
            raise MissingDataError("topic file not found", path=path)
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"not UTF-8 text ({exc.reason})", path=path) from None
        name = name or path.name.split(".")[0]
        topics: list[Topic] = []
        seen: set[int] = set()
        for lineno, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise InputFormatError(
                    "malformed topic line", path=path, line=lineno, expected="<topic number> <query text>"
                )
            number = int(parts[0])
            if number in seen:
                raise InputFormatError(f"duplicate topic {number}", path=path, line=lineno)
            seen.add(number)
            topics.append(Topic(number, " ".join(parts[1].split()), name))
        if not topics:
            raise InputFormatError("no topics in file", path=path, expected="lines '<topic number> <query text>'")
        return cls(name, tuple(topics), str(path), hashlib.sha256(raw).hexdigest())

    @classmethod
    def merge(cls, name: str, sets: Iterable[TopicSet]) -> TopicSet:
        """Concatenate topic sets (ids must not clash)."""
        topics: list[Topic] = []
        seen: set[int] = set()
        for s in sets:
            for t in s:
                if t.number in seen:
                    raise ConfigError(f"topic {t.number} occurs in more than one topic set")
                seen.add(t.number)
                topics.append(t)
        return cls(name, tuple(topics))


@dataclass(frozen=True)
class Year:
    """One AVS evaluation: its collection, its topic file and its qrels name."""

    key: str  # "2019" or "progress"
    edition: str  # "tv19" or "progress"
    collection: str
    topic_file: str
    qrels_name: str  # file name under <root>/<collection>/TextData/
    topic_range: tuple[int, int]
    extra_sets: tuple[str, ...] = field(default=())

    @property
    def year(self) -> int | None:
        return int(self.key) if self.key.isdigit() else None

    def topics(self) -> TopicSet:
        """The bundled topics of this evaluation."""
        from avsbench.data.resources import bundled_topic_file  # importlib.resources only when needed

        return TopicSet.read(bundled_topic_file(self.topic_file), name=self.edition)

    @property
    def xml_dtd_year(self) -> int:
        """The tvYYYY folder of NIST's DTD URL for this evaluation."""
        return self.year if self.year is not None else 2019


YEARS: dict[str, Year] = {
    "2016": Year("2016", "tv16", IACC3, "tv16.avs.txt", "avs.qrels.tv16", (501, 530)),
    "2017": Year("2017", "tv17", IACC3, "tv17.avs.txt", "avs.qrels.tv17", (531, 560)),
    "2018": Year("2018", "tv18", IACC3, "tv18.avs.txt", "avs.qrels.tv18", (561, 590)),
    "2019": Year("2019", "tv19", V3C1, "tv19.avs.txt", "avs.qrels.tv19", (611, 640)),
    "2020": Year("2020", "tv20", V3C1, "tv20.avs.txt", "avs.qrels.tv20", (641, 660)),
    "2021": Year("2021", "tv21", V3C1, "tv21.avs.txt", "avs.qrels.tv21", (661, 680)),
    "progress": Year("progress", "progress", V3C1, "progress.avs.txt", "avs.qrels.progress", (591, 610)),
}


def get_year(key: int | str) -> Year:
    """Look up an evaluation by year (2016..2021, also "tv19"/"19") or "progress"."""
    k = str(key).strip().lower()
    if k.startswith("tv"):
        k = k[2:]
    if k.isdigit() and len(k) == 2:
        k = "20" + k
    if k not in YEARS:
        raise ConfigError(f"unknown AVS year {key!r}", expected="one of " + ", ".join(YEARS))
    return YEARS[k]


def parse_years(spec: str | Iterable[str | int]) -> list[Year]:
    """Parse "2019,2020" (or a list) into Year records, keeping order and dropping repeats."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Year] = []
    for item in items:
        if str(item).strip() == "":
            continue
        y = get_year(item)
        if y not in out:
            out.append(y)
    if not out:
        raise ConfigError("no year given", expected="e.g. --year 2019")
    return out


def year_of_topic(number: int) -> Year:
    """The evaluation a plain topic number belongs to."""
    for y in YEARS.values():
        lo, hi = y.topic_range
        if lo <= number <= hi:
            return y
    raise UnknownIdError(f"topic {number} belongs to no known AVS year", expected="topics 501-680")


def infer_year(qrels_topic_ids: Iterable[str]) -> Year:
    """Infer the evaluation from run/qrels topic ids ("1611", ...): the year most ids belong to."""
    counts: dict[str, int] = {}
    for tid in qrels_topic_ids:
        try:
            y = year_of_topic(plain_topic_id(tid))
        except UnknownIdError:
            continue
        counts[y.key] = counts.get(y.key, 0) + 1
    if not counts:
        raise ConfigError(
            "cannot infer the AVS year from the topic ids", expected="topic ids 1501-1680 or --year/--qrels"
        )
    return YEARS[max(counts, key=lambda k: counts[k])]


@functools.lru_cache(maxsize=1)
def _bundled_topics() -> dict[int, Topic]:
    """Every bundled topic, by plain number (read once)."""
    out: dict[int, Topic] = {}
    for y in YEARS.values():
        for t in y.topics():
            out[t.number] = t
    return out


def topic_text(topic: int | str) -> str:
    """The bundled text of a topic given by plain number (611) or qrels/run id ("1611"); "" when unknown."""
    if isinstance(topic, str):
        try:
            topic = plain_topic_id(topic)
        except UnknownIdError:
            return ""
    found = _bundled_topics().get(topic)
    return found.text if found else ""
