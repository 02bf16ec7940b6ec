"""The one error type users see.

Library code raises `ReelworksError` for anything the user can fix (a missing file, a
malformed parameter, bad credentials). The CLI prints it as a single `error: ...` line and
exits non-zero; everything else is a bug and keeps its traceback.
"""


class ReelworksError(Exception):
    """A problem with the job's input or environment, explained in one line."""

    exit_code = 2

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class NotFoundError(ReelworksError):
    """A URI, model, pipeline or step that does not exist."""
