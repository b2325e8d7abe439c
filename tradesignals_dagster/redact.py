"""Hide credentials in URLs before they are printed, logged or stored in Dagster metadata.

Service URLs may carry credentials: ``http://user:password@registry:8081`` (Confluent's
client accepts them there), ``wss://feed?token=...``. Every message that shows a URL passes
it through :func:`redact_url`; text that may *contain* URLs (a client library's exception)
passes through :func:`redact_text`. The user name is kept, since it helps to debug and is
not a secret; the password and secret-looking query values become ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters whose values are credentials (compared case-insensitively, ignoring - and _).
_SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "accesstoken",
        "apikey",
        "key",
        "apisecret",
        "auth",
        "authorization",
        "signature",
        "sig",
        "credential",
        "credentials",
        "clientsecret",
        "sessiontoken",
        "xamzsecuritytoken",
        "xamzsignature",
        "xamzcredential",
    }
)

# scheme://userinfo@ anywhere in free text, up to the last '@' before whitespace, '/' or a quote
# (an unencoded '@' in a password must not leave the rest of the password behind).
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/'\"<>]*)@")
# a whole URL in free text, for the query-string pass.
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***``.

    ``http://alice:s3cret@host:8081/x`` becomes ``http://alice:***@host:8081/x``; a URL with a
    user but no password (``http://token@host``) loses the user part too, since a lone user
    part is often a token. Several URLs separated by commas (Confluent's ``url`` setting) are
    each redacted. Text that is not a URL comes back unchanged.
    """
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal: fall back to the textual pass
        return _redact_userinfo_text(url)
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{MASK}@{hostport}"
    query = _redact_query(parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (credentials in userinfo and in query strings)."""
    text = _redact_userinfo_text(text)
    return _URL_IN_TEXT.sub(lambda m: _redact_query_of(m.group(0)), text)


def _redact_userinfo_text(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        user, sep, _ = match.group("userinfo").partition(":")
        return f"{match.group('scheme')}{user}:{MASK}@" if sep else f"{match.group('scheme')}{MASK}@"

    return _USERINFO_IN_TEXT.sub(mask, text)


def _redact_query_of(url: str) -> str:
    if "?" not in url:
        return url
    base, _, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    return f"{base}?{_redact_query(query)}{hash_}{fragment}"


def _is_secret(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in _SECRET_PARAMS


def _redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_is_secret(k) for k, _ in pairs):
        return query
    return urlencode([(k, MASK if _is_secret(k) else v) for k, v in pairs], safe="*")
