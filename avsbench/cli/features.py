"""``avsbench features``: convert features to BigFile, show a BigFile's shape."""

from __future__ import annotations

from pathlib import Path

import click

from avsbench.data.atomic import recover_folder
from avsbench.data.bigfile import BigFile
from avsbench.errors import ConfigError, InputFormatError, MissingDataError


def read_id_list(path: Path) -> list[str]:
    """Ids for a ``.npy`` conversion: one per line (or whitespace-separated), blank lines ignored."""
    if not path.is_file():
        raise MissingDataError("id file not found", path=path)
    try:
        return path.read_text(encoding="utf-8").split()
    except UnicodeDecodeError as exc:
        raise InputFormatError(f"not UTF-8 text ({exc.reason})", path=path) from None


@click.group()
def features() -> None:
    """Work with BigFile features (feature.bin, id.txt, shape.txt)."""


@features.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--ids", "ids_path", type=click.Path(path_type=Path), default=None, help="Row ids for a .npy source, one per line."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "npy", "text"]),
    default="auto",
    show_default=True,
    help="Source format; auto: .npy by extension, else text.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT folder.")
def convert(source: Path, output: Path, ids_path: Path | None, fmt: str, overwrite: bool) -> None:
    """Convert SOURCE (a 2-d .npy array, or text lines '<id> v1 ... vD') to a BigFile folder OUTPUT.

    OUTPUT is written as a unit: an interrupted conversion leaves the old folder or the new one.
    """
    recover_folder(output)  # a replacement cut short by a crash: the old folder is back before the check
    if output.exists() and not overwrite:
        raise ConfigError(f"{output} exists", expected="a new folder, or --overwrite")
    if fmt == "auto":
        fmt = "npy" if source.suffix == ".npy" else "text"
    if fmt == "npy":
        if ids_path is None:
            raise ConfigError("a .npy source needs --ids FILE (one row id per line)")
        bigfile = BigFile.from_npy(source, read_id_list(ids_path), output)
    else:
        if ids_path is not None:
            raise ConfigError("--ids is only for .npy sources; text lines carry their own ids")
        bigfile = BigFile.from_text(source, output)
    click.echo(f"wrote {output}: {bigfile.nrows:,} rows x {bigfile.dim} float32")


@features.command()
@click.argument("path", type=click.Path(path_type=Path))
def show(path: Path) -> None:
    """Validate the BigFile at PATH and print its shape and first ids."""
    bigfile = BigFile(path)
    click.echo(f"{path}: {bigfile.nrows:,} rows x {bigfile.dim} float32, {bigfile.nbytes:,} bytes")
    if bigfile.nrows:
        click.echo("first ids: " + " ".join(bigfile.ids[:5]))
