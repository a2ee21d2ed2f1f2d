"""The error classes: which are the user's to fix (exit 2, no traceback) and which are not."""

from __future__ import annotations

import pytest

from dml_bench.errors import (
    ConfigError,
    DatasetNotFoundError,
    PluginError,
    RunFailedError,
    UnknownNameError,
    UserError,
)


@pytest.mark.parametrize("cls", [ConfigError, DatasetNotFoundError, PluginError, UnknownNameError])
def test_user_errors_exit_with_2(cls: type[UserError]) -> None:
    assert issubclass(cls, UserError) and cls("x").exit_code == 2


def test_a_failed_run_is_not_bad_input() -> None:
    """A run that fails (e.g. a non-finite loss) is recorded in its folder, not shown as bad
    input: it must not be caught by the CLI's UserError handler."""
    assert not issubclass(RunFailedError, UserError)


def test_unknown_name_reads_as_its_message_and_is_still_a_key_error() -> None:
    exc = UnknownNameError("Unknown method 'x'. Valid methods are: a, b.")
    assert str(exc) == "Unknown method 'x'. Valid methods are: a, b."  # KeyError would add quotes
    assert str(KeyError("m")) == "'m'"
    assert isinstance(exc, KeyError)
    assert str(UnknownNameError()) == ""
    with pytest.raises(KeyError):
        raise exc
