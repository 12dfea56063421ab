"""The CLI's exit codes and ``CliError``, the one failure its modules raise and ``main`` prints."""

from __future__ import annotations

EXIT_OK, EXIT_DEPLOY_FAILED, EXIT_CLIENT, EXIT_SERVER = 0, 1, 2, 3
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: printed as one message, no traceback, with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
