"""Spread independent work items (run files to score) over several CPU cores with forked workers.

Each worker is a fork of the calling process, so what was loaded before (the qrels) is shared
copy-on-write and nothing is sent to it; it returns its results pickled through a pipe. The
caller does the first share of the items itself. Results come back in the order of the items,
and the error raised is the one the first failing item raises, as in a plain loop. Where
``os.fork`` does not exist (Windows), or other threads run (a fork copies only the calling
thread, and a lock another one holds would never be released in the copy), the items are
processed in the calling process.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from avsbench.errors import AvsbenchError

T = TypeVar("T")
R = TypeVar("R")

AUTO_MIN_ITEMS = 4  # fewer items than this are processed in the calling process when jobs are automatic


def fork_is_safe() -> bool:
    """Whether this process can fork workers: ``os.fork`` exists and no other Python thread runs."""
    if not hasattr(os, "fork"):
        return False
    threading = sys.modules.get("threading")  # not imported: no other thread was started from Python
    return threading is None or threading.active_count() == 1


def usable_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def jobs_for(requested: int, num_items: int) -> int:
    """The processes for ``num_items`` items: ``requested``, or when it is 0 (the user did not say) one per
    usable core, and none besides the caller for a few items."""
    if requested:
        return requested
    if num_items < AUTO_MIN_ITEMS:
        return 1
    return max(1, min(usable_cpus(), num_items))


def map_in_workers(
    func: Callable[[T], R], items: Sequence[T], jobs: int, on_done: Callable[[int], None] | None = None
) -> list[R]:
    """``[func(x) for x in items]`` computed by ``jobs`` processes (the caller and ``jobs - 1`` forks).

    ``on_done(n)`` is called as ``n`` more items are finished (the caller's items one by one, the
    workers' when their results arrive).
    """
    jobs = max(1, min(jobs, len(items)))
    if jobs == 1 or not fork_is_safe():
        return [_done(func(x), on_done) for x in items]
    bounds = [len(items) * k // jobs for k in range(jobs + 1)]
    shares = [list(items[bounds[k] : bounds[k + 1]]) for k in range(jobs)]
    workers = [_start_worker(func, share) for share in shares[1:]]
    try:
        mine: list[R] = [_done(func(x), on_done) for x in shares[0]]
    except BaseException:
        for pid, fd in workers:
            _stop_worker(pid, fd)
        raise
    results = mine
    failure: BaseException | None = None
    for pid, fd in workers:
        outcome = _collect(pid, fd)
        if failure is not None:
            continue  # an earlier share failed: its error is the one a plain loop raises
        if isinstance(outcome, BaseException):
            failure = outcome
            continue
        results.extend(outcome)
        if on_done is not None:
            on_done(len(outcome))
    if failure is not None:
        raise failure
    return results


def _done(result: R, on_done: Callable[[int], None] | None) -> R:
    if on_done is not None:
        on_done(1)
    return result


def _start_worker(func: Callable[[T], R], share: list[T]) -> tuple[int, int]:
    """Fork a worker computing ``func`` over ``share``; its pid and the pipe its pickled outcome comes through."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: compute, send, leave without running the parent's exit handlers
        os.close(read_fd)
        status = 0
        try:
            payload = pickle.dumps([func(x) for x in share], protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # sent to the parent, which raises it
            payload = _pickled_error(exc)
        try:
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
        except BaseException:
            status = 1
        os._exit(status)
    os.close(write_fd)
    return pid, read_fd


def _pickled_error(exc: BaseException) -> bytes:
    try:
        return pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that cannot be pickled: its text still reaches the user
        return pickle.dumps(AvsbenchError(f"worker process failed: {type(exc).__name__}: {exc}"))


def _collect(pid: int, fd: int) -> list | BaseException:
    """A worker's results, or the exception it raised (or one saying how it died)."""
    with os.fdopen(fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    try:
        return pickle.loads(payload)
    except Exception:
        how = f"killed by signal {-os.waitstatus_to_exitcode(status)}" if os.WIFSIGNALED(status) else "exited early"
        return AvsbenchError(f"a worker process scoring runs {how} (out of memory?); try --jobs 1")


def _stop_worker(pid: int, fd: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    except OSError:
        pass
    os.close(fd)
