"""One exception hierarchy for every error a user can cause.

Each error carries the file, the line (1-based) and what was expected, so the CLI
can print it as one clear line and exit non-zero without a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class AvsbenchError(Exception):
    """Base class of all errors caused by input, configuration or missing data."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.expected = expected

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path + (f":{self.line}" if self.line is not None else "") + ": "
        text = where + self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return text


class InputFormatError(AvsbenchError):
    """A file is malformed: wrong field count, bad number, truncated, not well-formed."""


class UnknownIdError(AvsbenchError):
    """A shot, topic, feature or caption id is not where it should be."""


class MissingDataError(AvsbenchError):
    """A file or folder the operation needs does not exist."""


class ConfigError(AvsbenchError):
    """Options or configuration are inconsistent (unknown year, bad option value...)."""


class EvaluationError(AvsbenchError):
    """The evaluation cannot be computed (e.g. no run topic is a qrels topic)."""


class MissingExtraError(AvsbenchError):
    """An optional dependency (an install extra such as ``avsbench[model]``) is not installed."""


class DownloadError(AvsbenchError):
    """A download failed: no network, an HTTP error, a cut connection, or bytes that are not the pinned file."""


class AvsbenchWarning(UserWarning):
    """A warning the CLI shows as one ``avsbench: warning:`` line."""
