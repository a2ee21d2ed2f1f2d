"""Errors that dml-bench shows to a user.

A :class:`UserError` is bad input the user can fix (unknown name, bad value, missing data). The CLI
prints its message as one paragraph and exits with code 2, without a traceback. Anything else is a
bug or an environment failure and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message names the problem and the fix, in one paragraph."""

    exit_code = 2


class ConfigError(UserError):
    """A config key or value is unknown or invalid."""


class UnknownNameError(UserError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(UserError):
    """A dataset's files are missing or corrupt on disk."""


class PluginError(UserError):
    """A third-party plugin failed to load or registered something invalid."""


class RunFailedError(Exception):
    """A training run failed (e.g. a non-finite loss); recorded in the run's status."""
