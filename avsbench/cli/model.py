"""``avsbench model``: import reference LAFF checkpoints and describe model folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


@click.group()
def model() -> None:
    """Model folders: import reference checkpoints, show what a model contains."""


@model.command("import-laff")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Model folder to write.")
@click.option(
    "--w2v",
    type=click.Path(path_type=Path),
    default=None,
    help="Word-vector BigFile folder (e.g. word2vec/flickr/vec500flickr30m).",
)
@click.option(
    "--clip-feature",
    default=None,
    help="Name of the precomputed CLIP text feature (TextData/<name>/); default from the checkpoint, else 'clip'.",
)
@click.option(
    "--unmasked-frames",
    is_flag=True,
    help="LAFF-ml: keep the reference's unmasked frame softmax (reproduces its frame weights).",
)
@click.option(
    "--clip-weights",
    type=click.Path(path_type=Path),
    default=None,
    help="Fine-tuned CLIP file (keys clip_model.*, e.g. TextData/clip_finetune_8frame_uniform_1103/model_best.pth.tar) "
    "whose text tower replaces the checkpoint's, as the reference's StrongCLIP predictor does.",
)
def import_laff(
    checkpoint: Path,
    out_dir: Path,
    w2v: Path | None,
    clip_feature: str | None,
    unmasked_frames: bool,
    clip_weights: Path | None,
) -> None:
    """Convert a reference LAFF checkpoint (model_best.pth.tar) into our format.

    The checkpoint's CLIP text tower is kept (its visual tower is skipped), so that CLIP text
    features of new topics can be computed online.
    """
    from avsbench.model.reference_import import import_reference_checkpoint

    config = import_reference_checkpoint(
        checkpoint,
        out_dir,
        w2v=w2v,
        clip_feature=clip_feature,
        frame_mask=not unmasked_frames,
        clip_weights=clip_weights,
    )
    video = ", ".join(f"{s.name} ({s.kind}, {s.dim})" for s in config.video_features)
    text = ", ".join(f"{s.name} ({s.dim})" for s in config.text_features)
    click.echo(f"wrote {out_dir}: {config.heads} heads x {config.head_dim}; video: {video}; text: {text}")
    clip = config.source.get("clip_text")
    if clip:
        kept = f"{clip['text_keys']} text keys kept, {clip['skipped_visual_keys']} visual keys skipped"
        click.echo(f"CLIP text tower: {clip['weights']} ({kept})")
    elif any(s.reference_name == "CLIP_encoder" for s in config.text_features):
        click.echo("no CLIP weights in the checkpoint: CLIP text features must be precomputed (TextData/<feature>/)")


@model.command("info")
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def info(model_dir: Path, as_json: bool) -> None:
    """Show a model's features, dims, parameters and training metrics."""
    from rich.console import Console
    from rich.table import Table

    from avsbench.model.checkpoint import model_info, training_summary

    summary = model_info(model_dir)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    console.print(
        f"[bold]{summary['path']}[/bold]: {summary['heads']} heads x {summary['head_dim']} "
        f"(common space {summary['common_dim']}), fusion {summary['fusion']}, {summary['parameters']:,} parameters"
    )
    for side in ("video_features", "text_features"):
        table = Table(title=side.replace("_", " "))
        for column in ("name", "kind", "dim", "transform", "batch_norm"):
            table.add_column(column)
        for spec in summary[side]:
            table.add_row(*(str(spec[c]) for c in ("name", "kind", "dim", "transform", "batch_norm")))
        console.print(table)
    console.print(
        f"bow vocabulary: {summary['bow_vocab_size']} words; GRU vocabulary: {summary['gru_vocab_size']}; word "
        f"vectors: {summary['w2v']}"
    )
    clip = summary.get("clip_text")
    if clip:
        console.print(f"CLIP text ({clip['feature']}): {_clip_line(clip)}")
    metrics = summary["metrics"]
    if metrics.get("val"):
        values = ", ".join(f"{k}={v:.4g}" for k, v in metrics["val"].items())
        console.print(f"validation ({training_summary(summary)}): {values}")
    elif metrics.get("history"):
        console.print(f"training: {training_summary(summary)}")
    if not summary["complete"]:
        console.print(
            "[bold]incomplete[/bold]: the training run did not finish; 'avsbench train --resume' continues it"
        )
    if summary["training"]:
        console.print("training: " + json.dumps(summary["training"]))
    if summary["source"]:
        console.print("source: " + json.dumps(summary["source"]))


def _clip_line(clip: dict) -> str:
    if not clip["online"]:
        return "no CLIP weights; the text feature must be precomputed (TextData/<feature>/)"
    dims = clip["dims"]
    where = f"{clip.get('weights', 'stored tower')}" + (f", {clip['file']}" if clip.get("file") else "")
    skipped = f"; {clip['skipped_visual_keys']} visual keys skipped" if "skipped_visual_keys" in clip else ""
    sizes = f"width {dims['width']}, {dims['layers']} layers, {dims['heads']} heads, {dims['embed']}-d"
    return f"online from {where} ({sizes}){skipped}"
