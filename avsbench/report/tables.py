"""The one table abstraction of the reports, and its renderings.

A :class:`ReportTable` is a title, :class:`Column` s (header, number format), :class:`Row` s
(cells by header; dimmed detail rows; section breaks) and notes printed under it. It is built
directly (score tables) or from a data frame (:meth:`ReportTable.from_frame`, the comparison and
the leaderboard), and rendered as a rich table on a console, as plain text of a given width, as
GitHub Markdown or as booktabs LaTeX. rich is imported only by the console renderings.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

MISSING = "–"


def is_missing(value: object) -> bool:
    """None, NaN or pandas' NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


@dataclass(frozen=True)
class Column:
    """A column: header, number format (``".4f"``; a column with one is numeric, right-aligned),
    the text of a missing value, and hints for the console (rich) rendering."""

    header: str
    fmt: str | None = None
    missing: str = MISSING
    min_width: int | None = None
    no_wrap: bool = False
    overflow: Literal["fold", "crop", "ellipsis", "ignore"] = "fold"
    ratio: int | None = None  # share of the width left over (the table then fills the console)

    @property
    def numeric(self) -> bool:
        return self.fmt is not None

    def render(self, value: object) -> str:
        """The cell text of ``value``."""
        if is_missing(value):
            return self.missing
        if isinstance(value, bool):
            return "yes" if value else "no"
        if self.fmt and (isinstance(value, (int, float)) or hasattr(value, "item")):
            return format(value, self.fmt)
        return str(value)


@dataclass(frozen=True)
class Row:
    """Cells by column header; ``detail`` rows are dimmed; ``end_section`` draws a rule below."""

    cells: Mapping[str, object]
    detail: bool = False
    end_section: bool = False


@dataclass
class ReportTable:
    """One displayed table: title, columns, rows and the notes printed under it."""

    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # long name in headers -> short label, where too wide
    keys: int = 1  # leading columns repeated in each part when the table is split to fit

    @classmethod
    def from_frame(
        cls,
        title: str,
        frame: pd.DataFrame,
        formats: Mapping[str, str] | None = None,
        notes: Sequence[str] = (),
        **layout: Any,
    ) -> ReportTable:
        """A table of ``frame``'s rows; ``formats`` gives the number format of the numeric columns;
        ``layout``: ``aliases`` and ``keys`` (see the class)."""
        formats = formats or {}
        columns = [Column(str(c), formats.get(str(c))) for c in frame.columns]
        rows = [Row(dict(zip((c.header for c in columns), values))) for values in frame.itertuples(index=False)]
        return cls(title, columns, rows, list(notes), **layout)

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]

    def text_rows(self) -> list[list[str]]:
        """Every row as cell texts, in column order."""
        return [[c.render(row.cells.get(c.header)) for c in self.columns] for row in self.rows]


# --- Markdown and LaTeX --------------------------------------------------------------------


def _markdown_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_tables(tables: Sequence[ReportTable]) -> str:
    """GitHub-flavoured Markdown: a heading, a pipe table and its notes per table."""
    parts: list[str] = []
    for table in tables:
        lines = [f"### {table.title}", ""] if table.title else []
        lines.append("| " + " | ".join(_markdown_escape(h) for h in table.headers) + " |")
        lines.append("|" + "|".join("---:" if c.numeric else "---" for c in table.columns) + "|")
        lines += ["| " + " | ".join(_markdown_escape(v) for v in row) + " |" for row in table.text_rows()]
        for note in table.notes:
            lines.extend(["", note])
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "Δ": r"$\Delta$", "–": "--",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_tables(tables: Sequence[ReportTable]) -> str:
    """One booktabs ``tabular`` per table, each in a ``table`` float with its title as caption."""
    parts: list[str] = []
    for table in tables:
        spec = "".join("r" if c.numeric else "l" for c in table.columns)
        lines = [
            r"\begin{table}[ht]", r"\centering", f"\\caption{{{latex_escape(table.title)}}}",
            f"\\begin{{tabular}}{{{spec}}}", r"\toprule",
            " & ".join(latex_escape(h) for h in table.headers) + r" \\", r"\midrule",
        ]  # fmt: skip
        lines += [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.text_rows()]
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [f"\\par\\footnotesize {latex_escape(note)}" for note in table.notes]
        lines.append(r"\end{table}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


# --- fitting a console ---------------------------------------------------------------------

TEXT_MIN_WIDTH = 10  # the narrowest a wrapping text column is made
FOLDED_HEADER_WIDTH = 8  # numeric columns narrower than their header fold headers longer than this
COLUMN_OVERHEAD = 2  # characters of padding and rule per column of the console tables


@dataclass(frozen=True)
class FittedTable:
    """A table laid out for a console: fixed widths of its numeric columns (None: text, flexible)."""

    table: ReportTable
    widths: list[int | None]


def _text_width(texts: Sequence[str]) -> int:
    return max((len(line) for t in texts for line in t.splitlines() or [""]), default=0)


def _layout(table: ReportTable, fold_headers: bool) -> tuple[list[int | None], int]:
    """Fixed widths of the numeric columns (their numbers never wrap) and the table's least width."""
    cells = list(zip(*table.text_rows())) or [() for _ in table.columns]
    widths: list[int | None] = []
    least = 0
    for column, texts in zip(table.columns, cells):
        header = len(column.header)
        if fold_headers and column.numeric:
            header = min(header, FOLDED_HEADER_WIDTH)
        natural = max(_text_width(texts), header, 1)
        if column.numeric:
            widths.append(natural)
            least += natural
        else:
            widths.append(None)
            if column.ratio:
                least += column.min_width or TEXT_MIN_WIDTH
            else:
                least += natural if column.no_wrap else min(natural, max(TEXT_MIN_WIDTH, column.min_width or 0))
        least += COLUMN_OVERHEAD
    return widths, least


def _constants_in_title(table: ReportTable) -> ReportTable:
    """Text columns (past the keys) holding one value in every row, moved into the title."""
    if len(table.rows) < 2:
        return table
    texts = table.text_rows()
    constant = [
        i for i in range(table.keys, len(table.columns))
        if not table.columns[i].numeric and len({row[i] for row in texts}) == 1
    ]  # fmt: skip
    if not constant:
        return table
    said = ", ".join(f"{table.columns[i].header} {texts[0][i]}" for i in constant)
    kept = [c for i, c in enumerate(table.columns) if i not in constant]
    return replace(table, title=f"{table.title} ({said})", columns=kept)


def _with_aliases(table: ReportTable) -> ReportTable:
    """Headers with the table's long names replaced by their short labels, and a legend note."""
    names = sorted(table.aliases, key=len, reverse=True)

    def shorten(header: str) -> str:
        for name in names:
            header = header.replace(name, table.aliases[name])
        return header

    renamed = {c.header: shorten(c.header) for c in table.columns}
    if all(old == new for old, new in renamed.items()):
        return table
    columns = [replace(c, header=renamed[c.header]) for c in table.columns]
    rows = [replace(r, cells={renamed.get(k, k): v for k, v in r.cells.items()}) for r in table.rows]
    used = [name for name in table.aliases if any(name in old for old in renamed if old != renamed[old])]
    legend = "; ".join(f"{table.aliases[name]} = {name}" for name in used)
    return replace(table, columns=columns, rows=rows, notes=[*table.notes, legend], aliases={})


def _split(table: ReportTable, width: int) -> list[FittedTable]:
    """Parts of the table that each fit ``width``: the key columns, then as many others as fit."""
    keys, others = table.columns[: table.keys], table.columns[table.keys :]
    groups: list[list[Column]] = [[]]
    for column in others:
        trial = replace(table, columns=[*keys, *groups[-1], column])
        if groups[-1] and _layout(trial, True)[1] > width:
            groups.append([])
        groups[-1].append(column)
    parts = []
    for i, group in enumerate(groups, 1):
        notes = table.notes if i == len(groups) else []
        part = replace(table, title=f"{table.title} ({i}/{len(groups)})", columns=[*keys, *group], notes=notes)
        parts.append(FittedTable(part, _layout(part, True)[0]))
    return parts


def fit_table(table: ReportTable, width: int) -> list[FittedTable]:
    """Lay ``table`` out in ``width`` columns without splitting a number: as it is if it fits, else
    with constant columns in the title, then with short labels for long names (and a legend), then
    with headers folded, and at last split into parts that repeat the key columns."""
    candidates = [(table, False)]
    compact = _constants_in_title(table)
    candidates += [(compact, False), (_with_aliases(compact), False), (_with_aliases(compact), True)]
    for candidate, fold_headers in candidates:
        widths, least = _layout(candidate, fold_headers)
        if least <= width:
            return [FittedTable(candidate, widths)]
    return _split(candidates[-1][0], width)


# --- console (rich) ------------------------------------------------------------------------


def rich_table(table: ReportTable, widths: Sequence[int | None] | None = None) -> Table:
    """The table as a ``rich`` table (numbers right-aligned, detail rows dimmed); ``widths`` fixes
    the width of columns (see :func:`fit_table`)."""
    from rich import box
    from rich.table import Table

    flexible = any(c.ratio for c in table.columns)
    view = Table(
        title=table.title or None, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold", expand=flexible,
        pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for c, fixed in zip(table.columns, widths or [None] * len(table.columns)):  # fixed: numbers fit, headers fold
        view.add_column(
            c.header, justify="right" if c.numeric else "left", width=fixed, min_width=c.min_width,
            no_wrap=c.no_wrap and fixed is None, overflow=c.overflow, ratio=c.ratio,
        )  # fmt: skip
    for row, texts in zip(table.rows, table.text_rows()):
        view.add_row(*texts, style="dim" if row.detail else None, end_section=row.end_section)
    return view


def print_tables(tables: Sequence[ReportTable], console: Console | None = None) -> None:
    """Print each table and its notes, fitted to the console's width (to stdout by default)."""
    from rich.console import Console

    console = console or Console()
    for fitted in (part for table in tables for part in fit_table(table, console.width)):
        console.print(rich_table(fitted.table, fitted.widths))
        for note in fitted.table.notes:
            console.print(note, style="dim", highlight=False, markup=False)
        console.print()


def tables_text(tables: Sequence[ReportTable], width: int, color: bool = False) -> str:
    """The tables as text ``width`` columns wide (with ANSI styles when ``color``)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="auto" if color else None)
    print_tables(tables, console)
    return buffer.getvalue()
