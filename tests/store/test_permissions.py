"""Folders that others can write into are found; the owner's own and private-group ones are not."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from dml_bench.store.permissions import other_writers, shared_write_warning


def _folder(root: Path, name: str, mode: int) -> Path:
    path = root / name
    path.mkdir()
    path.chmod(mode)
    return path


def test_private_and_read_only_folders_have_no_other_writers(tmp_path: Path) -> None:
    assert other_writers(_folder(tmp_path, "private", 0o700)) is None
    assert other_writers(_folder(tmp_path, "readable", 0o755)) is None
    assert other_writers(tmp_path / "missing") is None


def test_a_folder_every_user_can_write_is_found(tmp_path: Path) -> None:
    assert other_writers(_folder(tmp_path, "open", 0o777)) == "every user"
    assert other_writers(_folder(tmp_path, "sticky", 0o1777)) == "every user"  # may add files


def _private_group_of_owner() -> bool:
    group = grp.getgrgid(os.getgid())
    owner = pwd.getpwuid(os.getuid()).pw_name
    return group.gr_name == owner and set(group.gr_mem) <= {owner}


def test_group_write_is_found_unless_the_group_is_the_owners_private_group(tmp_path: Path) -> None:
    """A umask of 002 with a user private group (Debian, Ubuntu) shares with nobody."""
    folder = _folder(tmp_path, "group", 0o775)
    expected = (
        None if _private_group_of_owner() else f"the group {grp.getgrgid(os.getgid()).gr_name}"
    )
    assert other_writers(folder) == expected


def _a_shared_group() -> int | None:
    for name in ("users", "staff", "adm", "sudo"):
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        return group.gr_gid
    return None


@pytest.mark.skipif(os.getuid() != 0, reason="changing a folder's group or owner needs root")
def test_a_shared_group_or_another_owner_is_found(tmp_path: Path) -> None:
    gid = _a_shared_group()
    if gid is None:
        pytest.skip("no shared group on this machine")
    shared = _folder(tmp_path, "shared", 0o775)
    os.chown(shared, 0, gid)
    assert other_writers(shared) == f"the group {grp.getgrgid(gid).gr_name}"
    theirs = _folder(tmp_path, "theirs", 0o755)
    nobody = pwd.getpwnam("nobody")
    os.chown(theirs, nobody.pw_uid, nobody.pw_gid)
    assert other_writers(theirs) == "its owner nobody"


def test_one_warning_names_the_folder_and_counts_its_shared_run_folders(tmp_path: Path) -> None:
    results = _folder(tmp_path, "results", 0o755)
    for name in ("a", "b", "c"):
        _folder(results, name, 0o755)
    assert shared_write_warning([("results folder", results)]) is None
    results.chmod(0o777)
    (results / "b").chmod(0o777)
    (results / "c").chmod(0o777)
    warning = shared_write_warning([("results folder", results)])
    assert warning is not None
    assert f"the results folder {results} (every user)" in warning
    assert f"2 folder(s) in the results folder {results} (e.g. b: every user)" in warning
    assert "plant a checkpoint" in warning and "chmod -R go-w" in warning
