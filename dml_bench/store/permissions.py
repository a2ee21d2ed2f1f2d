"""Who else can write into a results folder, so ``dml-bench run`` and ``datasets`` can warn.

A user who can write into a run folder can plant a ``checkpoint.pt`` for the next ``dml-bench run``
to resume from, or change records a report reads. Checkpoints are loaded without running code
(:mod:`dml_bench.train.checkpoint`), but a planted one can still change results. Files dml-bench
writes get the user's umask (:func:`dml_bench.store.write.create_temporary`); this module finds
folders that others can write anyway: writable by every user, writable by a group other than the
owner's private group, or owned by another (non-root) user.

A group-writable folder is *not* reported when its group is the owner's user private group (same
name as the owner, no other members): that is what a umask of 002 gives on Debian and Ubuntu, and
nobody else is in that group.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path


def other_writers(path: Path) -> str | None:
    """Who besides its owner can write into the folder ``path`` (e.g. ``"every user"``), or
    ``None`` when nobody else can (or it does not exist)."""
    try:
        info = path.stat()
    except OSError:
        return None
    if info.st_uid not in (os.getuid(), 0):
        return f"its owner {_user_name(info.st_uid)}"
    if info.st_mode & stat.S_IWOTH:
        return "every user"
    if info.st_mode & stat.S_IWGRP and not _private_group(info.st_uid, info.st_gid):
        return f"the group {_group_name(info.st_gid)}"
    return None


def shared_write_warning(folders: Sequence[tuple[str, Path]]) -> str | None:
    """One warning paragraph for the folders (each ``(what, path)``, e.g. ``("results folder",
    results)``) that others can write into, themselves or their direct sub-folders; ``None`` when
    there are none."""
    found: list[str] = []
    for what, root in folders:
        writers = other_writers(root)
        if writers is not None:
            found.append(f"the {what} {root} ({writers})")
        shared = [p for p in _subfolders(root) if other_writers(p) is not None]
        if shared:
            example = other_writers(shared[0])
            found.append(
                f"{len(shared)} folder(s) in the {what} {root} (e.g. {shared[0].name}: {example})"
            )
    if not found:
        return None
    return (
        f"{'; '.join(found)} can be written by others, who could plant a checkpoint or change "
        "records there. dml-bench refuses checkpoints that would run code, but a planted one "
        "could still change results. Restrict it (e.g. `chmod -R go-w FOLDER`) if others use "
        "this machine."
    )


def _subfolders(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _private_group(uid: int, gid: int) -> bool:
    try:
        group, owner = grp.getgrgid(gid), pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    return group.gr_name == owner and set(group.gr_mem) <= {owner}


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
