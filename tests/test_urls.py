"""Hiding credentials in URLs (``loopml._urls``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopml._urls import redact_text, redact_url, url_secrets

# Secrets are drawn from characters no other part of the generated URLs uses, so
# "the secret is not in the output" cannot fail because of a coincidence.
_SECRET = st.builds(
    "{}{}".format,
    st.sampled_from("QWXZ"),
    st.text(alphabet="QWXZ0123456789/+=", min_size=3, max_size=24),
)
# A lone token has no '/' (nothing would tell it from a path then).
_TOKEN = st.text(alphabet="QWXZ0123456789_-", min_size=4, max_size=24)
_SCHEME = st.sampled_from(["memory", "s3", "gs", "https", "postgresql+psycopg", "abfs"])
_TOKEN_SCHEME = st.sampled_from(["memory", "s3", "gs", "https", "git+https", "abfs"])
_USER = st.text(alphabet="abcdefgh_", min_size=1, max_size=8)
_HOST = st.sampled_from(["bucket", "db.example:5432", "127.0.0.1", "acct.blob.core"])
_PATH = st.sampled_from(["", "/x.csv", "/a/b.parquet", "/db"])
_SECRET_PARAM = st.sampled_from(
    ["token", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "password",
     "access_key", "api_key", "secret", "client_secret", "auth"]
)  # fmt: skip


@given(_SCHEME, _USER, _SECRET, _HOST, _PATH)
def test_a_password_in_a_url_is_never_shown(
    scheme: str, user: str, secret: str, host: str, path: str
) -> None:
    """Issue 12 item 16: ``scheme://user:SECRET@host`` loses its password, keeps the rest."""
    url = f"{scheme}://{user}:{secret}@{host}{path}"
    shown = redact_url(url)
    assert shown == f"{scheme}://{user}:***@{host}{path}"
    assert secret in url_secrets(url)
    assert secret not in redact_text(f"failed to open {url!r}: no such file")
    assert secret not in redact_text(f"/{user}:{secret}@{host}{path}", url_secrets(url))


@given(_TOKEN_SCHEME, _TOKEN, _HOST, _PATH)
def test_a_lone_user_token_is_hidden(scheme: str, secret: str, host: str, path: str) -> None:
    assert redact_url(f"{scheme}://{secret}@{host}{path}") == f"{scheme}://***@{host}{path}"


@given(_SCHEME, _HOST, _PATH, _SECRET_PARAM, _SECRET)
def test_secret_query_values_are_hidden(
    scheme: str, host: str, path: str, name: str, secret: str
) -> None:
    """Issue 12 item 16: presigned and token query parameters lose their values."""
    url = f"{scheme}://{host}{path}?versionId=7&{name}={secret}#part"
    assert redact_url(url) == f"{scheme}://{host}{path}?versionId=7&{name}=***#part"
    assert secret not in redact_text(f"cannot read <{url}>")


@pytest.mark.parametrize(
    "text",
    [
        "/tmp/data/a@b:c.csv",
        "DataFrame(3 rows × 2 columns)",  # noqa: RUF001 - the sign loopml writes
        "sqlite:////tmp/store/loopml.db",
        "s3://bucket/user@example.com/x.csv",
        "http://127.0.0.1:8080/v2/models/m@champion/infer",
    ],
)
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact_url(text) == text
    assert redact_text(text) == text


def test_a_lone_database_user_is_a_role_not_a_token() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert redact_url(url) == url
    assert url_secrets(url) == ()


def test_a_raw_secret_with_a_slash_is_still_user_information() -> None:
    url = "s3://AKIAEXAMPLE:wJalr/K7MDENG+bPxRfiCY@bucket/data.csv"
    assert redact_url(url) == "s3://AKIAEXAMPLE:***@bucket/data.csv"
