"""One registry of output formats, shared by every command that prints results.

A format has a name, a one-line description, whether it is a machine format (exact values, never
fitted to the terminal) and a renderer per *subject* (``scores``, ``comparison``, ``leaderboard``).
Renderers are named as ``"module:function"`` and imported only when used, so that scoring to
``sample-eval`` or ``json`` never imports rich or pandas.

Every renderer is called as ``renderer(value, options) -> str``.
"""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from avsbench.errors import ConfigError

SCORES = "scores"
COMPARISON = "comparison"
LEADERBOARD = "leaderboard"

# the width of tables when stdout is no terminal and $COLUMNS is not set
DEFAULT_WIDTH = 120


@dataclass(frozen=True)
class RenderOptions:
    """What a renderer may be asked for beyond the value itself."""

    per_topic: bool = False
    measures: tuple[str, ...] = ()  # empty: the subject's default measures
    table: str | None = None  # comparison: the table of csv / jsonl output
    width: int = DEFAULT_WIDTH  # terminal columns, for the human formats
    color: bool = False  # ANSI styles in the human formats (stdout is a terminal)


@dataclass(frozen=True)
class OutputFormat:
    """A named output format and its renderer for each subject it applies to."""

    name: str
    description: str
    machine: bool
    renderers: Mapping[str, str] = field(default_factory=dict)  # subject -> "module:function"


_SCORE = "avsbench.report.score_output"
_COMPARE = "avsbench.report.compare_report"
_BOARD = "avsbench.report.leaderboard"

FORMATS: dict[str, OutputFormat] = {
    f.name: f
    for f in (
        OutputFormat(
            "table",
            "rich tables fitted to the terminal",
            False,
            {
                SCORES: f"{_SCORE}:render_table",
                COMPARISON: f"{_COMPARE}:render_table",
                LEADERBOARD: f"{_BOARD}:render_table",
            },
        ),
        OutputFormat(
            "sample-eval",
            "NIST's sample_eval.pl text, byte for byte, per run",
            True,
            {SCORES: f"{_SCORE}:render_sample_eval"},
        ),
        OutputFormat(
            "trec_eval",
            "long lines measure<TAB>topic<TAB>value, as trec_eval prints them",
            True,
            {SCORES: f"{_SCORE}:render_trec_eval"},
        ),
        OutputFormat(
            "json",
            "one JSON document, full precision",
            True,
            {
                SCORES: f"{_SCORE}:render_json",
                COMPARISON: f"{_COMPARE}:render_json",
                LEADERBOARD: f"{_BOARD}:render_json",
            },
        ),
        OutputFormat(
            "jsonl",
            "one JSON object per line (per value, or per table row), full precision",
            True,
            {
                SCORES: f"{_SCORE}:render_jsonl",
                COMPARISON: f"{_COMPARE}:render_jsonl",
                LEADERBOARD: f"{_BOARD}:render_jsonl",
            },
        ),
        OutputFormat(
            "csv",
            "comma-separated values, full precision",
            True,
            {
                SCORES: f"{_SCORE}:render_csv",
                COMPARISON: f"{_COMPARE}:render_csv",
                LEADERBOARD: f"{_BOARD}:render_csv",
            },
        ),
        OutputFormat("tsv", "tab-separated values, full precision", True, {SCORES: f"{_SCORE}:render_tsv"}),
        OutputFormat(
            "markdown",
            "GitHub Markdown tables",
            False,
            {COMPARISON: f"{_COMPARE}:render_markdown", LEADERBOARD: f"{_BOARD}:render_markdown"},
        ),
        OutputFormat(
            "latex",
            "booktabs LaTeX tables",
            False,
            {COMPARISON: f"{_COMPARE}:render_latex", LEADERBOARD: f"{_BOARD}:render_latex"},
        ),
    )
}


def format_names(subject: str) -> tuple[str, ...]:
    """The formats that can render ``subject``, in registry order."""
    return tuple(name for name, f in FORMATS.items() if subject in f.renderers)


def format_help(subject: str) -> str:
    """One help line listing the formats of ``subject`` with their descriptions."""
    return "; ".join(f"{name}: {FORMATS[name].description}" for name in format_names(subject)) + "."


def renderer(subject: str, fmt: str) -> Callable[[Any, RenderOptions], str]:
    """The renderer of ``subject`` in format ``fmt`` (imported now)."""
    target = FORMATS[fmt].renderers.get(subject) if fmt in FORMATS else None
    if target is None:
        raise ConfigError(f"no {fmt!r} output for {subject}", expected=" or ".join(format_names(subject)))
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def render(subject: str, fmt: str, value: object, options: RenderOptions | None = None) -> str:
    """``value`` (a ``subject``) rendered in format ``fmt``."""
    return renderer(subject, fmt)(value, options or RenderOptions())


def terminal_width(default: int = DEFAULT_WIDTH) -> int:
    """Columns of the terminal: ``$COLUMNS``, else the size of stdout's terminal, else ``default``."""
    return shutil.get_terminal_size((default, 24)).columns
