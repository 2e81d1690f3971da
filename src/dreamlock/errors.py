"""Errors that reach the user as one line and an exit code.

``UserError`` means the user's input is wrong (exit 2); ``WorkError`` means the work itself
failed (exit 1). Both carry a message that names the file or key and says how to fix it.
"""

from __future__ import annotations


class DreamlockError(Exception):
    """Base class: a message meant for the user, and the exit code the CLI returns."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(DreamlockError):
    """Bad input: missing folder, bad config key, wrong type... Exit code 2."""

    exit_code = 2


class WorkError(DreamlockError):
    """The work failed although the input was valid (e.g. some images could not be read). Exit code 1."""

    exit_code = 1
