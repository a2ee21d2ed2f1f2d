"""Masking credentials: URLs of every kind a setting can hold, free text, records and logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dml_bench.redact import (
    MASK,
    RedactingFormatter,
    is_secret_key,
    mask_secrets,
    mask_text,
    mask_url,
)

PLANTED = "hunter2-planted"

URLS = {
    # Optuna / SQLAlchemy storage URLs (the tuning command's --storage)
    "postgresql://optuna:hunter2-planted@db.lab:5432/studies": (
        "postgresql://optuna:***@db.lab:5432/studies"
    ),
    "postgresql+psycopg2://u:hunter2-planted@h/db?sslmode=require": (
        "postgresql+psycopg2://u:***@h/db?sslmode=require"
    ),
    "mysql://root:hunter2-planted@127.0.0.1/optuna": "mysql://root:***@127.0.0.1/optuna",
    "redis://:hunter2-planted@cache:6379/0": "redis://:***@cache:6379/0",
    # an unencoded @ and / in the password: the last @ before the query ends the user information
    "postgresql://u:p@ss/hunter2-planted@h:5432/db": "postgresql://u:***@h:5432/db",
    # MLflow tracking URIs (the workflow issue's --log mlflow)
    "http://alice:hunter2-planted@mlflow.lab:5000": "http://alice:***@mlflow.lab:5000",
    "https://hunter2-planted@mlflow.lab/": "https://***@mlflow.lab/",
    "databricks://profile:hunter2-planted@workspace": "databricks://profile:***@workspace",
    # query-string credentials (S3 presigned, Azure SAS, API keys, Ray dashboards with tokens)
    "https://b.s3.amazonaws.com/x.pt?X-Amz-Credential=AK%2F1&X-Amz-Signature=hunter2-planted": (
        "https://b.s3.amazonaws.com/x.pt?X-Amz-Credential=***&X-Amz-Signature=***"
    ),
    "https://acct.blob.core.windows.net/c?sv=2022&sig=hunter2-planted&se=1": (
        "https://acct.blob.core.windows.net/c?sv=2022&sig=***&se=1"
    ),
    "ray://head:10001?token=hunter2-planted": "ray://head:10001?token=***",
    "http://h/api?api_key=hunter2-planted#top": "http://h/api?api_key=***#top",
    "https://maps.example/v1?key=hunter2-planted&q=x": "https://maps.example/v1?key=***&q=x",
    # a cluster address without a scheme
    "admin:hunter2-planted@head.lab:6379": "admin:***@head.lab:6379",
    # a URL that went through pathlib.Path, which keeps one slash
    "s3:/u:hunter2-planted@bucket/data": "s3:/u:***@bucket/data",
}

UNCHANGED = [
    "sqlite:///results/study.db",
    "sqlite:////abs/path/study.db",
    "sqlite:///:memory:",
    "postgresql://optuna@db.lab/studies",  # a role name without a password says who, not how
    "ray://head.lab:10001",
    "auto",
    "127.0.0.1:6379",
    "file:///home/u/mlruns",
    "file:/home/u/mlruns",
    "https://host:8080/path/@user/repo",  # an @ in the path, not user information
    "https://download.pytorch.org/models/googlenet-1378be20.pth",
    "bob@example.com",
    "/data/a:b@c/images",
    "http://h/search?key_size=3&cache_key=abc&token_count=4",
]


@pytest.mark.parametrize("url", sorted(URLS))
def test_mask_url_masks_the_credential_and_keeps_the_rest(url: str) -> None:
    masked = mask_url(url)
    assert masked == URLS[url]
    assert PLANTED not in masked
    assert mask_url(masked) == masked  # idempotent


@pytest.mark.parametrize("url", UNCHANGED)
def test_mask_url_leaves_urls_without_credentials_byte_for_byte(url: str) -> None:
    assert mask_url(url) == url


#: The URLs the standard library parses as their author meant (it splits an unencoded ``/`` in a
#: password into the path).
WELL_FORMED = [u for u in URLS if "://" in u and "p@ss/" not in u]


@pytest.mark.parametrize("url", WELL_FORMED)
def test_masked_url_names_the_same_server_and_database(url: str) -> None:
    """Checked with the standard library's parser, independently of how masking is done."""
    before, after = urlsplit(url), urlsplit(mask_url(url))
    assert (after.scheme, after.hostname, after.port, after.path) == (
        before.scheme,
        before.hostname,
        before.port,
        before.path,
    )
    if before.password is not None:
        assert after.password == MASK and after.username == before.username


def test_mask_text_masks_urls_and_keyword_credentials_in_free_text() -> None:
    text = (
        "could not connect to postgresql://u:hunter2-planted@db:5432/x (timeout); "
        "DSN host=db user=u password=hunter2-planted dbname=x; "
        "CSV file https:/u:hunter2-planted@host/list.csv does not exist; "
        "flag --token=hunter2-planted; quoted secret='hunter2 planted'; "
        'db_password="hunter2-planted"; kept: steps=600 cache_key=abc KEY=VALUE'
    )
    masked = mask_text(text)
    assert "hunter2" not in masked
    assert "postgresql://u:***@db:5432/x (timeout)" in masked
    assert "host=db user=u password=*** dbname=x" in masked
    assert "CSV file https:/u:***@host/list.csv does not exist" in masked
    assert "--token=***" in masked and "db_password=***" in masked
    assert "steps=600 cache_key=abc KEY=VALUE" in masked
    assert mask_text(masked) == masked


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "db_password",
        "sslpassword",
        "storagePassword",
        "access_token",
        "accessToken",
        "X-Amz-Signature",
        "sig",
        "api_key",
        "apikey",
        "aws_secret_access_key",
        "client_secret",
        "--token",
        "MLFLOW_TRACKING_TOKEN",
        "credentials",
    ],
)
def test_names_of_credentials(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "token_count",
        "cache_key",
        "sort_key",
        "key",  # a bare key is a credential only in a URL's query (below)
        "KEY",
        "bypass_cache",
        "passes",
        "steps",
        "data_root",
        "",
    ],
)
def test_names_that_only_mention_a_word_are_not_credentials(name: str) -> None:
    assert not is_secret_key(name)


def test_mask_secrets_walks_a_record() -> None:
    record = {
        "storage": "postgresql://u:hunter2-planted@h/db",
        "nested": {"password": "hunter2-planted", "token_count": 3, "empty_token": ""},
        "list": ["ray://head:10001?token=hunter2-planted", 3, None, 1.5],
        "tuple": ("x", "https://hunter2-planted@h/"),
        "path": Path("/data/u:hunter2-planted@h/x"),  # not credentials: a path
        "plain": Path("/data/images"),
        "steps": 600,
    }
    masked = mask_secrets(record)
    text = json.dumps(masked, default=str)
    assert text.count("hunter2-planted") == 1  # only the path, which holds no credentials
    assert masked["storage"] == "postgresql://u:***@h/db"
    assert masked["nested"] == {"password": MASK, "token_count": 3, "empty_token": ""}
    assert masked["list"] == ["ray://head:10001?token=***", 3, None, 1.5]
    assert masked["tuple"] == ("x", "https://***@h/")
    assert masked["plain"] is record["plain"]
    assert masked["steps"] == 600
    assert record["nested"]["password"] == "hunter2-planted"  # the input is not changed


def test_redacting_formatter_masks_messages_arguments_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ConnectionError("refused: mysql://root:hunter2-planted@h/optuna")
    except ConnectionError:
        import sys

        record = logging.LogRecord(
            "dml_bench.x",
            logging.ERROR,
            __file__,
            1,
            "storage %s failed",
            ("postgresql://u:hunter2-planted@h/db",),
            sys.exc_info(),
        )
    out = formatter.format(record)
    assert "hunter2" not in out
    assert "storage postgresql://u:***@h/db failed" in out
    assert "mysql://root:***@h/optuna" in out and "Traceback" in out
