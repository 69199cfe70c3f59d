"""`WebhookChannel`: HTTP POST of each finding as JSON with a Slack-compatible ``text`` field.

The URL often holds a secret token (Slack, Teams, Discord), so it never reaches a log line or an
exception message: errors name :func:`redact_url`'s ``scheme://host:port/…`` form instead.
A ``user:password@`` part becomes an ``Authorization: Basic`` header (urllib would send it as
part of the host name); the request goes to the URL without it.

Example:
    >>> redact_url("https://user:pw@hooks.slack.com/services/T0/B0/SECRET?x=1")
    'https://hooks.slack.com/…'
    >>> basic_auth("https://alerts:s3cret@example.com:8443/hook")
    ('https://example.com:8443/hook', 'Basic YWxlcnRzOnMzY3JldA==')
    >>> from tripwire.config import WebhookConfig
    >>> WebhookChannel(WebhookConfig(url="http://127.0.0.1:9/hook/TOKEN")).redacted
    'http://127.0.0.1:9/…'
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

from tripwire.alerts.channel import DeliveryError, summary_line
from tripwire.config import WebhookConfig
from tripwire.finding import Finding

_MAX_BACKOFF_S = 30.0


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: everything that may hold a secret (user, path, query) removed."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<webhook url>"
    if not parts.scheme or not host:
        return "<webhook url>"
    return f"{parts.scheme}://{host}{port}/…"


def basic_auth(url: str) -> tuple[str, str | None]:
    """``(url without its user:password@ part, "Basic <base64>" header value)``; ``(url, None)``
    when the URL has no user part (or cannot be parsed: sending it reports that). User and
    password are percent-decoded first, so ``%40`` in either is an ``@``."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url, None
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def payload(finding: Finding, step_word: str = "step") -> dict:
    """The JSON body: ``text`` for chat tools, ``finding`` for programs."""
    return {"text": summary_line(finding, step_word), "finding": finding.to_dict()}


class WebhookChannel:
    """POST to ``config.url`` with ``config.headers``; retry connection errors and 5xx with backoff.

    A 4xx answer is not retried (the URL, token or body is wrong and will stay wrong), except
    429 Too Many Requests, which is what a rate-limited chat webhook answers. Credentials in the
    URL (``https://user:password@host/...``) are sent as HTTP basic auth; an ``Authorization``
    entry in ``config.headers`` takes precedence over them.
    """

    name = "webhook"
    inline = False

    def __init__(self, config: WebhookConfig, *, step_word: str = "step") -> None:
        self.config = config
        self.step_word = step_word
        self.redacted = redact_url(config.url)
        self._url, auth = basic_auth(config.url)
        self._headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "tripwire",
                        **({"Authorization": auth} if auth else {}), **config.headers}
        secrets = _secret_parts(config.url) + ([auth, auth.split()[1]] if auth else [])
        self._secrets = sorted({p for p in secrets if len(p) > 1}, key=len, reverse=True)  # longest first
        self._opener = urllib.request.build_opener()  # honours HTTP(S)_PROXY like urlopen does

    def deliver(self, finding: Finding, abort: threading.Event) -> None:
        try:
            self._deliver(finding, abort)
        except DeliveryError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever it is, its text must not carry the URL
            raise DeliveryError(f"webhook {self.redacted}: {type(exc).__name__}: "
                                f"{self._scrub(str(exc))}") from None

    def _deliver(self, finding: Finding, abort: threading.Event) -> None:
        body = json.dumps(payload(finding, self.step_word), default=str).encode("utf-8")
        attempts = self.config.retries + 1
        reason = ""
        for attempt in range(attempts):
            if attempt:
                delay = min(self.config.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
                if abort.wait(delay):
                    raise DeliveryError(f"webhook {self.redacted}: gave up at close after {attempt} "
                                        f"attempt(s); last error: {reason}")
            retry, reason = self._post(body)
            if not reason:
                return
            if not retry:
                raise DeliveryError(f"webhook {self.redacted}: {reason} (not retried)")
        raise DeliveryError(f"webhook {self.redacted}: {reason} after {attempts} attempt(s)")

    def _post(self, body: bytes) -> tuple[bool, str]:
        """One POST: ``(retryable, error)``; the error is empty on success and free of the URL."""
        request = urllib.request.Request(self._url, data=body, headers=self._headers,  # noqa: S310 - the user's URL
                                         method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                response.read(65536)
            return False, ""
        except urllib.error.HTTPError as exc:
            exc.close()
            code = exc.code
            return code >= 500 or code == 429, f"HTTP {code} {self._scrub(str(exc.reason))}"
        except urllib.error.URLError as exc:
            return True, self._describe(exc.reason)
        except (OSError, http.client.HTTPException) as exc:  # timeouts while reading, dropped connections
            return True, self._describe(exc)
        except ValueError as exc:  # a malformed URL: will not get better
            return False, f"invalid webhook URL ({type(exc).__name__})"

    def _describe(self, reason: object) -> str:
        if isinstance(reason, TimeoutError):
            return f"no answer within {self.config.timeout_s:g} s"
        text = str(reason) if isinstance(reason, str) else f"{type(reason).__name__}: {reason}"
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        """Belt and braces: the URL and its path must not leak through a library's error text."""
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text


def _secret_parts(url: str) -> list[str]:
    """The whole URL and each part of it that may carry a token: user info and its password (as
    written and percent-decoded), path and query."""
    try:
        parts = urllib.parse.urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        pieces = [userinfo, userinfo.partition(":")[2], parts.path, parts.query]
        pieces += [urllib.parse.unquote(p) for p in pieces]
    except ValueError:
        pieces = []
    return [url, *pieces]
