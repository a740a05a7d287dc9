"""Plots of a run comparison: per-topic bars and the 11-point interpolated precision curve.

matplotlib is an optional dependency (``pip install 'avsbench[plot]'``), imported only when a
plot is drawn. Figures are built without pyplot (no global state, no display needed) and
written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avsbench.data.atomic import atomic_write_bytes
from avsbench.errors import ConfigError
from avsbench.eval.sample_eval import RECALL_LEVELS

if TYPE_CHECKING:
    from avsbench.eval.compare import Comparison

IMAGE_FORMATS = ("png", "svg", "pdf")


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib, which is not installed", expected="pip install 'avsbench[plot]' (or matplotlib)"
        ) from None
    return Figure


def _comparison(obj: Any) -> Comparison:
    """Accept a Comparison or anything holding one (a ComparisonReport)."""
    return getattr(obj, "comparison", obj)


def image_format(path: str | Path) -> str:
    """The image format named by a file's suffix (png, svg or pdf)."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in IMAGE_FORMATS:
        raise ConfigError(
            f"cannot tell the image format of {Path(path).name!r}", path=path, expected="a .png, .svg or .pdf file name"
        )
    return fmt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fmt = image_format(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def precision_curves(comparison: Comparison) -> dict[str, list[float]]:
    """Each run's 11-point interpolated precision (sample_eval's iprec@rec values); over several
    years, the topic-weighted mean of the per-year values (the mean over all scored topics)."""
    curves: dict[str, list[float]] = {}
    for name in comparison.runs:
        results = comparison.results[name].values()
        total = sum(r.num_topics for r in results)
        if total == 0:
            continue
        levels = range(len(RECALL_LEVELS))
        curves[name] = [sum(r.iprec_at_recall[i] * r.num_topics for r in results) / total for i in levels]
    return curves


def _synthetic_note(comparison: Comparison) -> str:
    """A title suffix saying which years were scored with generated (synthetic) qrels."""
    years = comparison.synthetic_years
    return f" - SYNTHETIC qrels ({', '.join(years)})" if years else ""


def draw_per_topic(ax: Any, comparison: Comparison) -> None:
    """Grouped bars per topic: differences from the baseline, or the metric itself for one run
    (or without a baseline)."""
    c = comparison
    frame = c.per_topic
    labels = [str(n) for n in frame["number"]]
    x = np.arange(len(labels))
    against_baseline = c.baseline is not None and len(c.runs) > 1
    shown = [n for n in c.runs if n != c.baseline] if against_baseline else list(c.runs)
    width = 0.8 / len(shown)
    for i, name in enumerate(shown):
        values = frame[f"Δ {name}"] if against_baseline else frame[name]
        ax.bar(x - 0.4 + width * (i + 0.5), values.fillna(0.0).to_numpy(), width, label=name)
    if against_baseline:
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_ylabel(f"Δ {c.metric} vs {c.baseline}")
        ax.set_title(f"Per-topic {c.metric} difference from the baseline{_synthetic_note(c)}")
    else:
        ax.set_ylabel(c.metric)
        ax.set_title(f"Per-topic {c.metric}{_synthetic_note(c)}")
    ax.set_xticks(x, labels, rotation=90 if len(labels) > 20 else 0, fontsize=8)
    ax.set_xlabel("topic")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def draw_precision_curve(ax: Any, comparison: Comparison) -> None:
    """The 11-point interpolated precision-recall curve of every run."""
    for name, curve in precision_curves(comparison).items():
        style = "--" if name == comparison.baseline else "-"
        ax.plot(RECALL_LEVELS, curve, style, marker="o", markersize=3, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("interpolated precision")
    ax.set_title(f"11-point interpolated precision (sample_eval iprec@rec){_synthetic_note(comparison)}")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=0.0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def plot_per_topic(comparison: Any, path: str | Path) -> Path:
    """Write the per-topic bar chart to ``path`` (.png, .svg or .pdf)."""
    c = _comparison(comparison)
    fig = _figure_class()(figsize=(max(6.0, 0.35 * len(c.per_topic) + 2), 4.0))
    draw_per_topic(fig.add_subplot(1, 1, 1), c)
    return _save(fig, path)


def plot_precision_curve(comparison: Any, path: str | Path) -> Path:
    """Write the 11-point interpolated precision curves to ``path``."""
    fig = _figure_class()(figsize=(6.0, 4.5))
    draw_precision_curve(fig.add_subplot(1, 1, 1), _comparison(comparison))
    return _save(fig, path)


def plot_comparison(comparison: Any, path: str | Path) -> Path:
    """Both plots in one figure: per-topic bars on top, precision curves below."""
    c = _comparison(comparison)
    fig = _figure_class()(figsize=(max(8.0, 0.35 * len(c.per_topic) + 2), 9.0))
    draw_per_topic(fig.add_subplot(2, 1, 1), c)
    draw_precision_curve(fig.add_subplot(2, 1, 2), c)
    fig.tight_layout()
    return _save(fig, path)
