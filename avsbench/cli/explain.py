"""``avsbench explain``: LAFF's attention weights for a topic and its top shots."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from avsbench.cli.next_steps import check_ready_to_rank
from avsbench.cli.options import TOPIC, clip_text_options, clip_warnings_as_lines, rootpath_option
from avsbench.data.topics import parse_years
from avsbench.extras import require_extra


@click.command()
@click.option("--model", "model_dir", type=click.Path(path_type=Path), help="Model folder (our format).")
@click.option("--year", required=True, help="AVS year of the topic (e.g. 2019).")
@click.option("--topic", required=True, type=TOPIC, help="Topic number (e.g. 611, or its run/qrels id 1611).")
@click.option(
    "--top", default=10, show_default=True, type=click.IntRange(1, 1000), help="Number of top shots to explain."
)
@rootpath_option()
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--w2v",
    type=click.Path(path_type=Path),
    default=None,
    help="Word-vector BigFile, if not where the model expects it.",
)
@clip_text_options()
def explain(
    model_dir: Path | None,
    year: str,
    topic: int,
    top: int,
    rootpath: str | None,
    device: str,
    w2v: Path | None,
    clip_text: str,
    clip_truncation: str,
) -> None:
    """Per-head feature weights for a topic (text side) and its top shots (video side)."""
    from rich.console import Console
    from rich.table import Table

    require_extra("model")
    check_ready_to_rank(model_dir, parse_years(year), rootpath, command="explain")
    assert model_dir is not None  # check_ready_to_rank names the next step when it is missing
    from avsbench.model.checkpoint import load_model
    from avsbench.model.explain import explain_topic

    loaded = load_model(model_dir, device, w2v=w2v, rootpath=rootpath)
    with clip_warnings_as_lines():
        result = explain_topic(
            loaded, year, topic, top=top, rootpath=rootpath, clip_text=clip_text, clip_truncation=clip_truncation
        )
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"[bold]topic {result.topic}[/bold]: {result.query}")
    heads = result.text_weights.shape[0]
    text_table = Table(title="text feature weights per head (topic)")
    text_table.add_column("feature")
    for h in range(heads):
        text_table.add_column(f"h{h}", justify="right")
    text_table.add_column("mean", justify="right")
    for j, name in enumerate(result.text_features):
        column = result.text_weights[:, j]
        text_table.add_row(name, *(f"{w:.3f}" for w in column), f"{column.mean():.3f}")
    console.print(text_table)
    shot_table = Table(title=f"video feature weights of the top {len(result.shots)} shots (mean over heads)")
    shot_table.add_column("rank", justify="right")
    shot_table.add_column("shot")
    shot_table.add_column("score", justify="right")
    for name in result.video_features:
        shot_table.add_column(name, justify="right")
    for rank, shot in enumerate(result.shots, 1):
        shot_table.add_row(
            str(rank), shot.shot_id, f"{shot.score:.4f}", *(f"{w:.3f}" for w in shot.weights.mean(axis=0))
        )
    console.print(shot_table)
    model_table = Table(
        title=f"model-level average weight per feature ({result.n_shots_scanned:,} shots; all topics of the year)"
    )
    model_table.add_column("side")
    model_table.add_column("feature")
    model_table.add_column("average weight", justify="right")
    for name, w in zip(result.video_features, result.average_video_weights):
        model_table.add_row("video", name, f"{w:.3f}")
    for name, w in zip(result.text_features, result.average_text_weights):
        model_table.add_row("text", name, f"{w:.3f}")
    console.print(model_table)
