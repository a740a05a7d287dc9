"""The ``avsbench`` entry point: ``score --format sample-eval --qrels Q RUN...`` runs without click.

Researchers call the scorer once per run in shell loops, so its start-up time is most of its
cost. The plain NIST-text scoring call (options ``--format sample-eval``, ``--qrels``,
``-q/--per-topic``, ``--lenient``, ``-j/--jobs``, run files) is parsed here and scored with the library; any
other command line, including ``--help``, goes to the click application unchanged, which
prints the same output for these options (tested).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

_FLAGS = {"-q": "per_topic", "--per-topic": "per_topic", "--lenient": "lenient"}
_VALUED = {"--qrels": "qrels", "--format": "fmt", "--jobs": "jobs", "-j": "jobs"}


def parse_fast_score(argv: Sequence[str]) -> dict[str, Any] | None:
    """The options of a plain ``score --format sample-eval --qrels Q RUN...`` call, else None."""
    if not argv or argv[0] != "score":
        return None
    options: dict[str, Any] = {
        "per_topic": False,
        "lenient": False,
        "qrels": None,
        "fmt": None,
        "jobs": None,
        "runs": [],
    }
    args = list(argv[1:])
    only_runs = False
    while args:
        arg = args.pop(0)
        if only_runs or arg == "-" or not arg.startswith("-"):
            options["runs"].append(arg)
        elif arg == "--":
            only_runs = True
        elif arg in _FLAGS:
            options[_FLAGS[arg]] = True
        elif arg in _VALUED and args:
            options[_VALUED[arg]] = args.pop(0)
        elif arg.startswith("--") and arg.split("=", 1)[0] in _VALUED and "=" in arg:
            name, value = arg.split("=", 1)
            options[_VALUED[name]] = value
        else:
            return None
    jobs = options.pop("jobs")
    if jobs is not None and not (jobs.isascii() and jobs.isdigit()):
        return None  # click says what is wrong with it
    options["jobs"] = int(jobs or 0)
    if options["fmt"] != "sample-eval" or not options["qrels"] or not options["runs"]:
        return None
    return options


def run_fast_score(options: dict[str, Any]) -> None:
    """Score like ``avsbench score`` does for these options: warnings on stderr, NIST's text on stdout."""
    from avsbench.eval.sample_eval import format_sample_eval
    from avsbench.eval.scoring import score_runs
    from avsbench.eval.workers import jobs_for

    runs = list(options["runs"])
    jobs = jobs_for(options["jobs"], len(runs))
    scored = score_runs(runs, qrels=options["qrels"], lenient=bool(options["lenient"]), jobs=jobs)
    for s in scored:
        for warning in s.warnings:
            sys.stderr.write(f"avsbench: warning: {warning}\n")
    sys.stderr.flush()
    for s in scored:
        sys.stdout.write(format_sample_eval(s.result, bool(options["per_topic"])))
    sys.stdout.flush()


def main() -> None:
    """Entry point of the ``avsbench`` command."""
    options = parse_fast_score(sys.argv[1:])
    if options is None:
        from avsbench.cli import main as click_main

        click_main()
        return
    status = fast_score_status(options)
    os._exit(status)  # all is written and flushed: skip the interpreter's teardown (a tenth of a short call)


def fast_score_status(options: dict[str, Any]) -> int:
    """Run :func:`run_fast_score` and return the exit status, errors written to stderr as one line."""
    from avsbench.errors import AvsbenchError

    try:
        run_fast_score(options)
        return 0
    except AvsbenchError as exc:
        return _failed(f"avsbench: error: {exc}\n", exc.exit_code)
    except BrokenPipeError:
        return 0
    except MemoryError:
        return _failed("avsbench: error: out of memory while scoring (a smaller input, or more memory)\n", 2)
    except OSError as exc:
        return _failed(f"avsbench: error: {exc.filename or ''}: {exc.strerror or exc}\n", 2)


def _failed(message: str, status: int) -> int:
    sys.stderr.write(message)
    sys.stderr.flush()
    return status
