"""Errors a user can act on: each prints as one line, never as a traceback."""

from __future__ import annotations


class OpslibError(Exception):
    """A user-facing error: the message says what is wrong and where."""


class ProfileError(OpslibError):
    """A profile cannot be found, parsed, validated or resolved."""


class RunbookError(OpslibError):
    """A runbook or one of its parameters does not exist or has a bad value."""


class RunInProgress(OpslibError):
    """The same runbook is already running for the same profile."""


class ChangedThenFailed(OpslibError):
    """A remedy changed its target and then found the result wrong: CRITICAL, since the
    target is neither as it was nor as planned. `backup` holds the before-image of what
    it did change, which the gate records with the failure."""

    def __init__(self, reason: str, backup: dict | None = None) -> None:
        super().__init__(reason)
        self.backup = backup


class BackupError(OpslibError):
    """A dump, copy or restore failed; the message is scrubbed."""
