"""``avsbench topics``: list a year's topics, or look topics up by number."""

from __future__ import annotations

import click

from avsbench.data.topics import parse_years, topic_number, year_of_topic
from avsbench.errors import ConfigError


@click.command()
@click.option("--year", "years", default=None, help="Year(s), e.g. 2019 or 2019,2020,progress.")
@click.option(
    "--topic",
    "topic_list",
    default=None,
    help="Only these topics, comma-separated: numbers (611) or run/qrels ids (1611); the year is found from them.",
)
@click.option("--qrels-ids", is_flag=True, help="Print qrels-style ids (1611) instead of plain numbers.")
def topics(years: str | None, topic_list: str | None, qrels_ids: bool) -> None:
    """List the topics of one or more AVS years, or the topics given with --topic."""
    if years is None and topic_list is None:
        raise ConfigError("no year and no topic given", expected="--year 2019 and/or --topic 611")
    wanted = [topic_number(t) for t in topic_list.split(",") if t.strip()] if topic_list is not None else None
    if wanted is not None and not wanted:
        raise ConfigError(f"no topic in --topic {topic_list!r}", expected="e.g. --topic 611,1612")
    chosen = parse_years(years) if years is not None else list(dict.fromkeys(year_of_topic(n) for n in wanted or []))
    for year in chosen:
        ts = year.topics()
        shown = [t for t in ts if wanted is None or t.number in wanted]
        if wanted is not None and not shown:
            continue
        click.echo(f"# {year.edition} ({year.collection}, {len(ts)} topics)")
        for t in shown:
            click.echo(f"{t.qrels_id if qrels_ids else t.number}\t{t.text}")
    missing = sorted(set(wanted or []) - {t.number for year in chosen for t in year.topics()})
    if missing:
        where = ", ".join(y.edition for y in chosen)
        raise ConfigError(
            f"topic(s) {', '.join(map(str, missing))} not in {where}", expected="topics of the year(s) given"
        )
