"""The ``avsbench`` command line. Thin: each command parses options, calls one library
function and renders its result. Subcommands are imported lazily so that ``avsbench score``
starts fast and never imports torch."""

from __future__ import annotations

import importlib
import sys

import click

from avsbench import __version__
from avsbench.errors import AvsbenchError
from avsbench.extras import extra_of_module, missing_extra_error

# command name -> "module:attribute" (modules under avsbench.cli)
COMMANDS: dict[str, str] = {
    "score": "avsbench.cli.score:score",
    "topics": "avsbench.cli.topics:topics",
    "collection": "avsbench.cli.collection:collection",
    "features": "avsbench.cli.features:features",
    "train": "avsbench.cli.train:train",
    "model": "avsbench.cli.model:model",
    "explain": "avsbench.cli.explain:explain",
    "rank": "avsbench.cli.rank:rank",
    "submit": "avsbench.cli.submit:submit",
    "validate": "avsbench.cli.submit:validate",
    "compare": "avsbench.cli.compare:compare",
    "leaderboard": "avsbench.cli.compare:leaderboard",
    "fuse": "avsbench.cli.compare:fuse",
    "demo": "avsbench.cli.demo:demo",
    "data": "avsbench.cli.data:data",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except AvsbenchError as exc:
            click.echo(f"avsbench: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            sys.exit(0)
        except ModuleNotFoundError as exc:
            extra = extra_of_module(exc.name)
            if extra is None:
                raise
            click.echo(f"avsbench: error: {missing_extra_error(extra, exc.name or extra)}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"avsbench: error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="avsbench")
def main() -> None:
    """Rank, submit and score TRECVID Ad-hoc Video Search runs."""
