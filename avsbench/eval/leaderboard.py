"""Published TRECVID AVS results, shipped as a data file with one source per number.

``leaderboard.json`` (next to this module) lists mean infAP values that were either read in a
public source (confidence ``V``) or computed with NIST's ``sample_eval.pl`` on public data
(confidence ``C``). Remembered, unverified figures are never shipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from avsbench.data.topics import get_year
from avsbench.errors import InputFormatError

LEADERBOARD_FORMAT = "avsbench-leaderboard/1"
CONFIDENCE_LEVELS = {"V": "verified in a public source", "C": "computed with sample_eval.pl on public data"}
KINDS = ("official", "computed", "retrospective")
_REQUIRED = {
    "year": str,
    "system": str,
    "kind": str,
    "category": str,
    "metric": str,
    "value": float,
    "confidence": str,
    "source": str,
}


@dataclass(frozen=True)
class LeaderboardEntry:
    """One published number: a system's mean metric on one year's topics, with its source."""

    year: str
    system: str
    run: str | None
    kind: str  # official TRECVID submission, computed by us with sample_eval.pl, or retrospective model run
    category: str
    metric: str
    value: float
    confidence: str
    source: str
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def default_leaderboard_path() -> Path:
    """Path of the bundled ``leaderboard.json``."""
    return Path(str(resources.files("avsbench.eval") / "leaderboard.json"))


def load_leaderboard(path: str | Path | None = None) -> list[LeaderboardEntry]:
    """Read and validate a leaderboard file (the bundled one by default)."""
    path = Path(path) if path is not None else default_leaderboard_path()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFormatError("leaderboard file not found", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"not valid JSON ({exc})", path=path) from None
    if not isinstance(document, dict) or document.get("format") != LEADERBOARD_FORMAT:
        raise InputFormatError("not an avsbench leaderboard", path=path, expected=f'"format": "{LEADERBOARD_FORMAT}"')
    raw_entries = document.get("entries")
    if not isinstance(raw_entries, list):
        raise InputFormatError("missing entry list", path=path, expected='"entries": [...]')
    return [_parse_entry(raw, index, path) for index, raw in enumerate(raw_entries)]


def _parse_entry(raw: object, index: int, path: Path) -> LeaderboardEntry:
    where = f"entry {index}"
    if not isinstance(raw, dict):
        raise InputFormatError(f"{where} is not an object", path=path)
    for key, kind in _REQUIRED.items():
        value = raw.get(key)
        ok = (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind is float
            else isinstance(value, kind) and value != ""
        )
        if not ok:
            raise InputFormatError(f"{where}: field {key!r} is missing or not a {kind.__name__}", path=path)
    if raw["confidence"] not in CONFIDENCE_LEVELS:
        raise InputFormatError(
            f"{where}: confidence {raw['confidence']!r} may not be shipped",
            path=path,
            expected="V (verified) or C (computed)",
        )
    if raw["kind"] not in KINDS:
        raise InputFormatError(f"{where}: unknown kind {raw['kind']!r}", path=path, expected=" or ".join(KINDS))
    get_year(raw["year"])  # unknown years are a ConfigError naming the year
    if not 0.0 <= float(raw["value"]) <= 1.0:
        raise InputFormatError(
            f"{where}: value {raw['value']} is not a mean infAP", path=path, expected="a number in [0, 1]"
        )
    run = raw.get("run")
    if run is not None and not isinstance(run, str):
        raise InputFormatError(f"{where}: field 'run' must be a string or null", path=path)
    return LeaderboardEntry(
        year=get_year(raw["year"]).key,
        system=raw["system"],
        run=run,
        kind=raw["kind"],
        category=raw["category"],
        metric=raw["metric"],
        value=float(raw["value"]),
        confidence=raw["confidence"],
        source=raw["source"],
        note=str(raw.get("note") or ""),
    )


def leaderboard_entries(year: str | int | None = None, path: str | Path | None = None) -> list[LeaderboardEntry]:
    """Entries for one year (all years when None), best value first within each year."""
    entries = load_leaderboard(path)
    if year is not None:
        key = get_year(year).key
        entries = [e for e in entries if e.year == key]
    return sorted(entries, key=lambda e: (e.year, -e.value, e.system))


def reference_entries(year: str | int, path: str | Path | None = None) -> list[LeaderboardEntry]:
    """The reference rows shown by ``compare`` for a year: every official or computed entry,
    and the best entry of each retrospective model family (first word of the system name)."""
    chosen: list[LeaderboardEntry] = []
    best_of_family: dict[str, LeaderboardEntry] = {}
    for entry in leaderboard_entries(year, path):
        if entry.kind != "retrospective":
            chosen.append(entry)
            continue
        family = entry.system.split()[0]
        if family not in best_of_family:
            best_of_family[family] = entry
    return sorted(chosen + list(best_of_family.values()), key=lambda e: (-e.value, e.system))
