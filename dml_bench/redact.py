"""Masking credentials before anything is recorded, printed or logged.

Results folders travel (shared directories, other nodes, colleagues), and a record of a run must say
what ran without handing out the passwords it ran with. Every setting that can hold a credential (a
database storage URL, a tracking URI, a cluster address with a token, a ``password=`` parameter)
goes through this module on its way into ``config.json``, ``env.json``, ``status.json``, a log line,
an error paragraph or a report.

The API, for every command that records a setting:

* :func:`mask_url` masks one URL: the password of its user information
  (``postgresql://user:***@host:5432/db``), the whole user information of web URLs where it is
  usually a token alone (``https://***@host``), and the values of query parameters named like a
  credential (``?token=***``). Everything else is kept byte for byte, so the masked URL still says
  which server and database a run used. A URL without credentials (``sqlite:///study.db``) comes
  back unchanged.
* :func:`mask_text` masks every URL inside free text (an exception message, a log line) and every
  ``NAME=value`` whose name looks like a credential (a libpq ``password=...`` keyword string,
  ``--token=...``).
* :func:`mask_secrets` returns a copy of a JSON-like structure (dicts, lists, strings) with every
  string passed through :func:`mask_text`, and the string value of every key named like a credential
  (``password``, ``db_password``, ``access_token``, ``aws_secret_access_key``, ...) replaced whole.
* :class:`RedactingFormatter` masks each formatted log line (tracebacks included).

Masking is idempotent (``mask_url(mask_url(u)) == mask_url(u)``) and one-way: a masked record is
for reading; the unmasked value lives only in the memory of the process that uses it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

#: What a masked value becomes.
MASK = "***"

#: Schemes whose user information alone (no ``:password``) is usually a token
#: (``https://<token>@github.com/...``); for other schemes a lone user name is kept.
TOKEN_USER_SCHEMES = frozenset({"http", "https", "ws", "wss", "git+https", "ftp", "ftps"})

#: Last words of a parameter or key name that mark its value as a credential.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "signature",
        "sig",
        "auth",
        "authorization",
        "apikey",
        "sas",
    }
)
#: Words before ``key`` that make ``..._key`` a credential (``api_key``, ``aws_secret_access_key``).
KEY_QUALIFIERS = frozenset(
    {"api", "access", "private", "secret", "signing", "account", "master", "subscription", "auth"}
)
_SECRET_SUFFIXES = ("password", "passwd", "token", "secret")

_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]*"
# One slash too: a URL that went through pathlib (``Path("s3://u:pw@b/x")`` is ``s3:/u:pw@b/x``)
# still carries its credentials.
_URL_IN_TEXT = re.compile(_SCHEME + r":/{1,2}[^\s'\"<>`]+")
_URL_START = re.compile(r"^(" + _SCHEME + r"):/{1,2}")
# NAME=value where NAME may carry leading dashes (--token=...); value quoted or up to a separator.
_ASSIGNMENT = re.compile(
    r"(?<![\w.\-])(-{0,2}[A-Za-z_][\w.\-]*)=('[^']*'|\"[^\"]*\"|[^\s&;,#'\"]*)"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def is_secret_key(name: str) -> bool:
    """Whether a parameter or record key named ``name`` holds a credential.

    Decided on the last word of the name (``db_password``, ``accessToken``, ``X-Amz-Signature``:
    yes; ``token_count``, ``cache_key``, ``bypass_cache``: no), so counters and hashes that merely
    mention a word keep their values.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", _CAMEL.sub("_", name.strip("-")).lower()) if w]
    if not words:
        return False
    last = words[-1]
    if last in SECRET_WORDS or last.endswith(_SECRET_SUFFIXES):
        return True
    return last == "key" and len(words) > 1 and words[-2] in KEY_QUALIFIERS


def mask_url(url: str) -> str:
    """``url`` with its password, token user name and credential query values masked.

    >>> mask_url("postgresql://optuna:hunter2@db.lab:5432/studies")
    'postgresql://optuna:***@db.lab:5432/studies'
    >>> mask_url("sqlite:///results/study.db")
    'sqlite:///results/study.db'

    A string with no ``scheme://`` is read as ``user:password@host...`` when it has that shape
    (a cluster address), and otherwise only its ``NAME=value`` credentials are masked.
    """
    match = _URL_START.match(url)
    scheme = match.group(1).lower() if match else ""
    start = match.end() if match else 0
    at = _userinfo_end(url, start, has_scheme=match is not None)
    if at is None:
        return url[:start] + _mask_assignments(url[start:], query=True)
    userinfo = _mask_userinfo(url[start:at], scheme)
    return url[:start] + userinfo + "@" + _mask_assignments(url[at + 1 :], query=True)


def _userinfo_end(url: str, start: int, has_scheme: bool) -> int | None:
    """The index of the ``@`` that ends the user information, or ``None`` when there is none.

    The last ``@`` before the query is taken (an unencoded ``@`` in a password is common); text
    with a ``/`` before it counts as user information only when it cannot be ``host:port/path``
    (an unencoded ``/`` in a password: ``user:pa/ss@host``).
    """
    at = url.rfind("@", start, _first_of(url, "?#", start))
    if at == -1:
        return None
    userinfo = url[start:at]
    if not has_scheme and ":" not in userinfo:
        return None  # an e-mail address or a path, not credentials
    if "/" in userinfo:
        user, colon, rest = userinfo.partition(":")
        if not colon or "/" in user or rest.partition("/")[0].isdigit():
            return None
    return at


def _first_of(text: str, chars: str, start: int) -> int:
    found = [i for i in (text.find(c, start) for c in chars) if i != -1]
    return min(found) if found else len(text)


def _mask_userinfo(userinfo: str, scheme: str) -> str:
    user, colon, password = userinfo.partition(":")
    if colon:
        return f"{user}:{MASK}" if password else userinfo
    if scheme in TOKEN_USER_SCHEMES and userinfo:
        return MASK
    return userinfo


def _mask_assignments(text: str, query: bool = False) -> str:
    """``NAME=value`` credentials masked; in a URL's query a bare ``key`` is one too (API keys:
    ``?key=...``), in free text it is not (``KEY=VALUE`` in a usage message)."""

    def replace(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        secret = is_secret_key(name) or (query and name.lower() == "key")
        if not value or not secret:
            return match.group(0)
        return f"{name}={MASK}"

    return _ASSIGNMENT.sub(replace, text)


def mask_text(text: str) -> str:
    """Free text with every URL passed through :func:`mask_url` and every ``NAME=value``
    credential masked (``host=db password=hunter2`` -> ``host=db password=***``)."""
    return _mask_assignments(_URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text))


def mask_secrets(value: Any, key: str | None = None) -> Any:
    """A copy of the JSON-like ``value`` with every credential masked (see the module docstring).

    ``key`` is the name ``value`` is stored under, if any: a non-empty string under a key named
    like a credential is masked whole. Paths become strings only where masking changed them.
    """
    if isinstance(value, str):
        if key is not None and value and is_secret_key(key):
            return MASK
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_secrets(v, key) for v in value)
    if isinstance(value, os.PathLike):
        text = os.fspath(value)
        masked = mask_secrets(text, key) if isinstance(text, str) else text
        return value if masked == text else masked
    return value


class RedactingFormatter(logging.Formatter):
    """A log formatter whose output, tracebacks included, has passed through :func:`mask_text`."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))
