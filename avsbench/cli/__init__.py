"""The ``avsbench`` command line. Thin: each command parses options, calls one library
function and renders its result. Subcommands are imported lazily so that ``avsbench score``
starts fast and never imports torch."""

from __future__ import annotations

import errno
import importlib
import sys
import warnings

import click

from avsbench import __version__
from avsbench.errors import AvsbenchError, AvsbenchWarning
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
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except AvsbenchError as exc:
            click.echo(f"avsbench: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a bad option of a subcommand: one line, like every other error
            where = exc.ctx.command_path if exc.ctx else "avsbench"
            click.echo(f"avsbench: error: {exc.format_message()} (see '{where} -h')", err=True)
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
            click.echo(f"avsbench: error: {describe_os_error(exc)}", err=True)
            sys.exit(2)
        except MemoryError:
            click.echo(f"avsbench: error: {OUT_OF_MEMORY}", err=True)
            sys.exit(2)
        except RuntimeError as exc:
            # torch's CPU allocator has no exception class of its own for a failed allocation
            if "can't allocate memory" not in str(exc) and type(exc).__name__ != "OutOfMemoryError":
                raise
            click.echo(f"avsbench: error: {OUT_OF_MEMORY}", err=True)
            sys.exit(2)


OUT_OF_MEMORY = (
    "out of memory: use smaller inputs or batches (e.g. --batch-size, fewer topics or features), "
    "close other programs, or run on a machine with more memory"
)


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: the file, what went wrong, and for a full disk what to do."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = where + (exc.strerror or str(exc))
    if exc.errno == errno.ENOSPC:
        text += " (free space on that disk, or write the output elsewhere)"
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings API
    """Our warnings as one ``avsbench: warning:`` line; others as Python shows them."""
    if issubclass(category, AvsbenchWarning):
        click.echo(f"avsbench: warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="avsbench")
def main() -> None:
    """Rank, submit and score TRECVID Ad-hoc Video Search runs."""
