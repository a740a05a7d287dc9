"""Shared helpers of the hostile-input suite: run the CLI in a child process under an
address-space limit and check that it failed with one clear error line.

Every owner of an input format adds its hostile cases in ``tests/test_hostile_*.py`` with these
helpers, so the suite asserts the same contract everywhere: exit 2, one ``avsbench: error:``
line on stderr, no traceback, memory bounded, nothing written.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Address-space limits (virtual memory). Importing torch maps about 1.5 GB of virtual space, so
# commands that load a model get the larger limit.
LIMIT_NO_TORCH_MB = 1024
LIMIT_TORCH_MB = 3072


def _limit(megabytes: int):
    def apply() -> None:
        size = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return apply


def run_cli_limited(
    args: list[str],
    *,
    limit_mb: int = LIMIT_NO_TORCH_MB,
    cwd: Path | None = None,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m avsbench ARGS`` under an address-space limit of ``limit_mb``."""
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = str(REPO) + os.pathsep + child_env.get("PYTHONPATH", "")
    child_env.setdefault("OMP_NUM_THREADS", "1")
    if env:
        child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "avsbench", *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        timeout=timeout,
        preexec_fn=_limit(limit_mb),
        input=stdin.decode() if stdin is not None else None,
        text=True,
        check=False,
    )


def assert_one_clear_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert exit 2, no traceback, exactly one ``avsbench: error:`` line naming every needle."""
    assert done.returncode == 2, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("avsbench: error:")]
    assert len(errors) == 1, done.stderr[-4000:]
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to check that a failed command wrote nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
