"""``avsbench data``: install NIST's official qrels under the data root (the only command that uses the network)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from avsbench.cli.options import rootpath_option
from avsbench.data.topics import get_year, parse_years

if TYPE_CHECKING:
    from avsbench.data.fetch import InstalledQrels


@click.group()
def data() -> None:
    """Install official data (qrels) under the data root."""


def _report(item: InstalledQrels) -> None:
    if item.warning:
        click.echo(f"avsbench: warning: {item.warning}", err=True)
    check = "git blob id verified" if item.verified else "UNVERIFIED"
    click.echo(f"{item.year.key}: {item.path} ({item.action}, {check})")


@data.command("fetch")
@click.argument("what", type=click.Choice(["qrels"]))
@click.option("--year", "years", required=True, help="Year(s), e.g. 2019 or 2016,2017,2018,2019,2020.")
@rootpath_option()
@click.option(
    "--url",
    default=None,
    help="Download from this mirror instead of the pinned commit: the file's repository "
    "path is appended, or put {path}, {name} or {commit} in the URL.",
)
def fetch(what: str, years: str, rootpath: str | None, url: str | None) -> None:
    """Download the official qrels of YEARS from a pinned public commit, verify and install them.

    Each file's git blob id must match the bundled manifest; nothing is installed unless all match.
    Files go to <root>/<collection>/TextData/avs.qrels.tvNN, where `avsbench score` finds them.
    """
    from avsbench.data.fetch import fetch_qrels
    from avsbench.progress import BYTES, progress_bars

    with progress_bars(sys.stderr.isatty(), unit=BYTES) as bars:
        installed = fetch_qrels(parse_years(years), rootpath, url=url, progress=bars)
    for item in installed:
        _report(item)


@data.command("add-qrels")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--year", required=True, help="The AVS year the file judges, e.g. 2019.")
@rootpath_option()
def add_qrels(file: str, year: str, rootpath: str | None) -> None:
    """Install a qrels FILE you already have for YEAR (its git blob id is checked against the manifest).

    A file that is not the published one is installed with a warning, recorded in the sidecar
    avs.qrels.tvNN.source.json next to it.
    """
    from avsbench.data.fetch import add_qrels as install

    _report(install(file, get_year(year), rootpath))
