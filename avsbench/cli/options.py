"""Options shared by the commands, defined once so that they read and behave the same everywhere.

Each function returns a click decorator; commands stack them like ``@click.option``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

from avsbench.data.root import ROOT_ENV

F = TypeVar("F", bound=Callable[..., Any])

DATA_ROOT_HELP = "Data root holding <collection>/... (default: ${env}, else ~/VisualSearch)."


def rootpath_option(help: str = DATA_ROOT_HELP, *, envvar: bool = True) -> Callable[[F], F]:
    """``--rootpath``: the data root, a folder; falls back to ``$AVSBENCH_ROOT`` when ``envvar``.

    Commands that generate data (the demo) pass ``envvar=False`` so that setting the data root
    never makes them write synthetic collections into it.
    """
    return click.option(
        "--rootpath",
        type=click.Path(file_okay=False),
        default=None,
        envvar=ROOT_ENV if envvar else None,
        show_envvar=False,
        help=help.format(env=ROOT_ENV),
    )


def rootpath_from_command_line(ctx: click.Context) -> bool:
    """Whether ``--rootpath`` was typed on the command line (not taken from ``$AVSBENCH_ROOT``)."""
    return ctx.get_parameter_source("rootpath") == click.core.ParameterSource.COMMANDLINE


def per_topic_option(
    help: str = "Per-topic values too.", *, default: bool = False, negatable: bool = False
) -> Callable[[F], F]:
    """``-q/--per-topic`` (trec_eval's ``-q``); ``negatable`` adds ``--no-per-topic``."""
    if negatable:
        shown = "--per-topic" if default else "--no-per-topic"
        return click.option(
            "-q", "--per-topic/--no-per-topic", "per_topic", default=default, show_default=shown, help=help
        )
    return click.option("-q", "--per-topic", "per_topic", is_flag=True, default=default, help=help)


def format_option(formats: Sequence[str], help: str | None = None, default: str = "table") -> Callable[[F], F]:
    """``--format``: one of ``formats`` (given to the function as ``fmt``)."""
    return click.option(
        "--format", "fmt", type=click.Choice(list(formats)), default=default, show_default=True, help=help
    )


def measure_option(
    measures: Sequence[str], help: str = "Measure to show (repeat for several; default: all)."
) -> Callable[[F], F]:
    """``-m/--measure``: measures to show, repeatable (given to the function as ``measures``, a tuple)."""
    return click.option("-m", "--measure", "measures", type=click.Choice(list(measures)), multiple=True, help=help)


def max_results_option(
    help: str = "Use only the first N shots of each topic of a run (trec_eval's -M).",
) -> Callable[[F], F]:
    """``-M/--max-results`` (trec_eval's name): cut each topic of a run to its first N shots."""
    return click.option(
        "-M", "--max-results", "max_results", type=click.IntRange(min=1), default=None, metavar="N", help=help
    )


class TopicNumber(click.ParamType):
    """A topic option's value: 611 or its run/qrels id 1611 (what ``score`` prints), as the plain number."""

    name = "topic"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from avsbench.data.topics import topic_number

        return topic_number(value)


TOPIC = TopicNumber()


CLIP_TEXT_HELP = (
    "Where the model's CLIP text feature comes from: auto (a precomputed TextData/<feature>/ BigFile "
    "covering every text wins, else the model's CLIP text tower; the reference's rule), online, or precomputed."
)
CLIP_TRUNCATION_HELP = (
    "Texts over 77 CLIP tokens: reference (cut to 77 ids, EOT lost, as LAFF does; warned) or openai (EOT kept)."
)


def clip_text_options() -> Callable[[F], F]:
    """``--clip-text auto|online|precomputed`` and ``--clip-truncation reference|openai``."""

    def decorate(function: F) -> F:
        function = click.option(
            "--clip-truncation",
            type=click.Choice(["reference", "openai"]),
            default="reference",
            show_default=True,
            help=CLIP_TRUNCATION_HELP,
        )(function)
        return click.option(
            "--clip-text",
            type=click.Choice(["auto", "online", "precomputed"]),
            default="auto",
            show_default=True,
            help=CLIP_TEXT_HELP,
        )(function)

    return decorate


@contextlib.contextmanager
def clip_warnings_as_lines() -> Iterator[None]:
    """Print each CLIP truncation warning raised inside as one ``avsbench: warning:`` line on stderr."""
    from avsbench.model.clip_text_tokenizer import ClipTruncationWarning

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always", ClipTruncationWarning)
            caught = recorded
            yield
    finally:
        # shown after the recording context: inside it, showwarning would append to the list being read
        for warning in caught:
            if issubclass(warning.category, ClipTruncationWarning):
                click.echo(f"avsbench: warning: {warning.message}", err=True)
            else:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
