"""``avsbench topics``: list a year's topics."""

from __future__ import annotations

import click

from avsbench.data.topics import parse_years


@click.command()
@click.option("--year", "years", required=True, help="Year(s), e.g. 2019 or 2019,2020,progress.")
@click.option("--qrels-ids", is_flag=True, help="Print qrels-style ids (1611) instead of plain numbers.")
def topics(years: str, qrels_ids: bool) -> None:
    """List the topics of one or more AVS years."""
    for year in parse_years(years):
        ts = year.topics()
        click.echo(f"# {year.edition} ({year.collection}, {len(ts)} topics)")
        for t in ts:
            click.echo(f"{t.qrels_id if qrels_ids else t.number}\t{t.text}")
