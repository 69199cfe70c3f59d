"""`EmailChannel`: one e-mail per finding over SMTP (``smtplib``), optional STARTTLS and login.

The login name and password come from the environment variables that ``username_env`` and
``password_env`` name; neither value is ever logged or put into an error message.

Example:
    >>> parse_smtp("mail.example.com:587"), parse_smtp("[::1]:25"), parse_smtp("localhost")
    (('mail.example.com', 587), ('::1', 25), ('localhost', 25))
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import threading
from email.message import EmailMessage

from tripwire.alerts.channel import DeliveryError
from tripwire.config import EmailConfig
from tripwire.finding import Finding

SUBJECT_MAX = 120


def parse_smtp(address: str) -> tuple[str, int]:
    """``host:port`` (port 25 when absent; ``[v6addr]:port`` for IPv6) -> ``(host, port)``."""
    address = address.strip()
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"invalid smtp address {address!r}; expected 'host:port', e.g. 'localhost:25'")
    return host, int(port) if port else 25


def subject(finding: Finding) -> str:
    """``[tripwire] <rule>: <message>``, on one line, at most :data:`SUBJECT_MAX` characters."""
    text = " ".join(f"[tripwire] {finding.rule}: {finding.message}".split())
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def body(finding: Finding, step_word: str = "step") -> str:
    """Plain-text body: what is wrong, what to try, where, and the evidence."""
    lines = [finding.message, "", f"What to try: {finding.suggestion}", "",
             f"Rule: {finding.rule} (type {finding.kind}), severity {finding.severity}",
             f"{step_word.capitalize()}: {finding.step}"
             + ("" if finding.epoch is None else f", epoch {finding.epoch}")]
    if finding.subject:
        lines.append(f"Subject: {finding.subject}")
    if finding.value is not None:
        threshold = "" if finding.threshold is None else f" (threshold {finding.threshold})"
        lines.append(f"Value: {finding.value}{threshold}")
    evidence = json.dumps(finding.to_dict()["evidence"], indent=2, sort_keys=True, default=str)
    lines += ["", "Evidence:", evidence, ""]
    return "\n".join(lines)


class EmailChannel:
    """Send each finding to ``config.to`` through ``config.smtp``."""

    name = "email"
    inline = False

    def __init__(self, config: EmailConfig, *, step_word: str = "step") -> None:
        self.config = config
        self.step_word = step_word

    def message(self, finding: Finding) -> EmailMessage:
        """The e-mail for one finding."""
        msg = EmailMessage()
        msg["Subject"] = subject(finding)
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg.set_content(body(finding, self.step_word))
        return msg

    def deliver(self, finding: Finding, abort: threading.Event | None = None) -> None:
        try:
            host, port = parse_smtp(self.config.smtp)
        except ValueError as exc:
            raise DeliveryError(str(exc)) from None
        user, password = self._credentials()
        where = f"smtp {host}:{port}"
        try:
            with smtplib.SMTP(host, port, timeout=self.config.timeout_s) as smtp:
                if self.config.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if user is not None:
                    smtp.login(user, password or "")
                smtp.send_message(self.message(finding))
        except (smtplib.SMTPException, OSError) as exc:
            text = f"{type(exc).__name__}: {exc}"
            for secret in (password, user):  # a server may echo what it was sent; never log it
                if secret:
                    text = text.replace(secret, "***")
            raise DeliveryError(f"e-mail via {where}: {text}") from None

    def _credentials(self) -> tuple[str | None, str | None]:
        names = (self.config.username_env, self.config.password_env)
        missing = [n for n in names if n and n not in os.environ]
        if missing:
            raise DeliveryError(f"e-mail login: environment variable {', '.join(missing)} is not set")
        user = os.environ[names[0]] if names[0] else None
        password = os.environ[names[1]] if names[1] else None
        if password is not None and user is None:
            raise DeliveryError("e-mail login: password_env is set but username_env is not")
        return user, password
