"""E-mail channel against a real aiosmtpd server on 127.0.0.1: content, login, failures, secrecy."""

from __future__ import annotations

import email
import email.policy
import logging

import pytest

from tripwire.alerts import AlertDispatcher
from tripwire.alerts.email_channel import SUBJECT_MAX, parse_smtp

from .conftest import make_finding, wait_until

PASSWORD = "pa55-w0rd-7c1b"

# aiosmtpd warns about AUTH without TLS; plain AUTH on 127.0.0.1 is what these tests want
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def mailer(smtp: str, **options) -> AlertDispatcher:
    return AlertDispatcher({"log": None, "email": {"smtp": smtp, "to": ["oncall@example.com", "ml@example.com"],
                                                    "sender": "trainer@example.com", **options}})


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_message_has_subject_and_body(smtp_server):
    server = smtp_server()
    d = mailer(server.address)
    finding = make_finding()
    d.send(finding)
    d.close(timeout_s=5)

    assert d.delivered == {"email": 1} and d.undelivered == {"email": 0}
    [received] = server.box.messages
    assert received["from"] == "trainer@example.com"
    assert received["to"] == ["oncall@example.com", "ml@example.com"]
    assert received["login"] is None  # no credentials configured: no AUTH
    msg = parse(received["content"])
    assert msg["Subject"] == f"[tripwire] dead_relu: {finding.message}"
    text = msg.get_content()
    for part in (finding.message, finding.suggestion, "Step: 120, epoch 1", "Subject: encoder.act1",
                 '"dead_fraction": 0.8', '"units": 64'):
        assert part in text


def test_long_subject_is_truncated_to_one_line(smtp_server):
    server = smtp_server()
    d = mailer(server.address)
    d.send(make_finding(message="the loss rose\n" + "x" * 500))
    d.close(timeout_s=5)
    subject = parse(server.box.messages[0]["content"])["Subject"]
    assert len(subject) == SUBJECT_MAX and subject.endswith("…") and "\n" not in subject
    assert subject.startswith("[tripwire] dead_relu: the loss rose x")


def test_refused_smtp_port_is_counted_undelivered(refused_port, caplog):
    d = mailer(f"127.0.0.1:{refused_port}")
    d.send(make_finding())
    d.close(timeout_s=5)
    assert d.failed == {"email": 1} and d.undelivered == {"email": 1}
    assert f"smtp 127.0.0.1:{refused_port}" in caplog.text and "ConnectionRefusedError" in caplog.text


def test_starttls_against_a_server_without_it_fails_cleanly(smtp_server, caplog):
    server = smtp_server()
    d = mailer(server.address, starttls=True)
    d.send(make_finding())
    d.close(timeout_s=5)
    assert d.failed == {"email": 1} and server.box.messages == []
    assert "STARTTLS" in caplog.text


def test_login_uses_credentials_from_the_environment(smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="tripwire")
    server = smtp_server(credentials=("alerts-bot", PASSWORD))
    monkeypatch.setenv("TW_SMTP_USER", "alerts-bot")
    monkeypatch.setenv("TW_SMTP_PASSWORD", PASSWORD)
    d = mailer(server.address, username_env="TW_SMTP_USER", password_env="TW_SMTP_PASSWORD")
    d.send(make_finding())
    d.close(timeout_s=5)

    assert server.logins == [("alerts-bot", PASSWORD)]
    assert d.delivered == {"email": 1}
    assert server.box.messages[0]["login"] == b"alerts-bot"
    assert PASSWORD not in caplog.text


def test_without_credentials_a_server_requiring_auth_refuses(smtp_server, caplog):
    server = smtp_server(credentials=("alerts-bot", PASSWORD))
    d = mailer(server.address)
    d.send(make_finding())
    d.close(timeout_s=5)
    assert d.failed == {"email": 1} and server.box.messages == []
    assert "530" in caplog.text  # authentication required


def test_wrong_password_fails_without_logging_it(smtp_server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="tripwire")
    server = smtp_server(credentials=("alerts-bot", "the-right-one"))
    monkeypatch.setenv("TW_SMTP_USER", "alerts-bot")
    monkeypatch.setenv("TW_SMTP_PASSWORD", PASSWORD)
    d = mailer(server.address, username_env="TW_SMTP_USER", password_env="TW_SMTP_PASSWORD")
    d.send(make_finding())
    d.send(make_finding(step=130))
    assert wait_until(lambda: d.failed["email"] == 2)  # at close, the first failure would end the channel
    d.close(timeout_s=5)

    assert len(server.logins) >= 2 and set(server.logins) == {("alerts-bot", PASSWORD)}  # smtplib tries each mechanism
    assert d.failed == {"email": 2} and server.box.messages == []
    assert "SMTPAuthenticationError" in caplog.text
    assert PASSWORD not in caplog.text


def test_missing_environment_variable_is_named(smtp_server, monkeypatch, caplog):
    server = smtp_server(credentials=("alerts-bot", PASSWORD))
    monkeypatch.delenv("TW_SMTP_MISSING", raising=False)
    monkeypatch.setenv("TW_SMTP_USER", "alerts-bot")
    d = mailer(server.address, username_env="TW_SMTP_USER", password_env="TW_SMTP_MISSING")
    d.send(make_finding())
    d.close(timeout_s=5)
    assert d.failed == {"email": 1} and server.logins == []
    assert "TW_SMTP_MISSING is not set" in caplog.text


@pytest.mark.parametrize("address, expected", [
    ("smtp.example.com:587", ("smtp.example.com", 587)),
    ("localhost", ("localhost", 25)),
    ("[::1]:2525", ("::1", 2525)),
])
def test_parse_smtp(address, expected):
    assert parse_smtp(address) == expected


@pytest.mark.parametrize("address", ["host:port", "host:70000", ":25", "[::1]:x"])
def test_parse_smtp_rejects_bad_addresses(address):
    with pytest.raises(ValueError, match="expected 'host:port'"):
        parse_smtp(address)
