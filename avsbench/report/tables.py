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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
    overflow: str = "fold"  # or "ellipsis"
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

    @classmethod
    def from_frame(
        cls, title: str, frame: pd.DataFrame, formats: Mapping[str, str] | None = None, notes: Sequence[str] = ()
    ) -> ReportTable:
        """A table of ``frame``'s rows; ``formats`` gives the number format of the numeric columns."""
        formats = formats or {}
        columns = [Column(str(c), formats.get(str(c))) for c in frame.columns]
        rows = [Row(dict(zip((c.header for c in columns), values))) for values in frame.itertuples(index=False)]
        return cls(title, columns, rows, list(notes))

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


# --- console (rich) ------------------------------------------------------------------------


def rich_table(table: ReportTable) -> Table:
    """The table as a ``rich`` table (numbers right-aligned, detail rows dimmed)."""
    from rich import box
    from rich.table import Table

    flexible = any(c.ratio for c in table.columns)
    view = Table(
        title=table.title or None, title_justify="left", box=box.SIMPLE_HEAD, header_style="bold", expand=flexible,
        pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for c in table.columns:
        view.add_column(
            c.header, justify="right" if c.numeric else "left", min_width=c.min_width, no_wrap=c.no_wrap,
            overflow=c.overflow, ratio=c.ratio,
        )  # fmt: skip
    for row, texts in zip(table.rows, table.text_rows()):
        view.add_row(*texts, style="dim" if row.detail else None, end_section=row.end_section)
    return view


def print_tables(tables: Sequence[ReportTable], console: Console | None = None) -> None:
    """Print each table and its notes (to stdout unless a console is given)."""
    from rich.console import Console

    console = console or Console()
    for table in tables:
        console.print(rich_table(table))
        for note in table.notes:
            console.print(note, style="dim", highlight=False, markup=False)
        console.print()


def tables_text(tables: Sequence[ReportTable], width: int, color: bool = False) -> str:
    """The tables as text ``width`` columns wide (with ANSI styles when ``color``)."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system="auto" if color else None)
    print_tables(tables, console)
    return buffer.getvalue()
