"""Notification channel types: what each one's configuration holds, how a notice looks
there, and how it is sent (one attempt; retries are the delivery task's job).

Why not apprise: its Slack, Discord, Teams and Telegram plugins post to the services' fixed
hosts (``hooks.slack.com``, ``discord.com``...), so neither a self-hosted endpoint that
speaks the same payload nor a receiver on loopback can be used, and ``notify()`` answers a
bool: no status code, no ``Retry-After``, no way to connect only to the address the network
policy checked. The payloads are small and documented, so each type is a function here
sending over httpx (the platform's HTTP client); e-mail goes through smtplib with a message
built by Django's ``EmailMessage`` so the SMTP server's real reply is reported.

Every outbound address passes ``backupplatform.netpolicy`` when a channel is saved and again
right before each attempt, against the address actually connected to; redirects are never
followed.
"""

from __future__ import annotations

import email.utils
import html
import logging
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from backupplatform import netpolicy
from backupplatform.errors import ValidationFailed
from backupplatform.fields import HIDDEN

from .models import ChannelType
from .notices import Notice

logger = logging.getLogger(__name__)

USER_AGENT = "backup-platform-notifier/1"
LEVEL_COLOURS = {"info": 0x2E86DE, "warning": 0xF39C12, "error": 0xE74C3C, "critical": 0x8E0000}


# --- configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigKey:
    name: str
    kind: str = "str"  # str, url, int, email_list, headers, choice
    required: bool = False
    secret: bool = False
    choices: tuple[str, ...] = ()
    max_length: int = 2000


CONFIG_KEYS: dict[str, tuple[ConfigKey, ...]] = {
    ChannelType.SLACK: (
        ConfigKey("webhook_url", "url", required=True, secret=True),
        ConfigKey("channel", max_length=200),
        ConfigKey("username", max_length=200),
        ConfigKey("icon_emoji", max_length=100),
    ),
    ChannelType.TEAMS: (ConfigKey("webhook_url", "url", required=True, secret=True),),
    ChannelType.DISCORD: (
        ConfigKey("webhook_url", "url", required=True, secret=True),
        ConfigKey("username", max_length=80),
    ),
    ChannelType.WEBHOOK: (
        ConfigKey("url", "url", required=True, secret=True),
        ConfigKey("headers", "headers", secret=True),
    ),
    ChannelType.TELEGRAM: (
        ConfigKey("bot_token", required=True, secret=True, max_length=200),
        ConfigKey("chat_id", required=True, max_length=100),
        ConfigKey("api_url", "url", max_length=500),
    ),
    ChannelType.EMAIL: (
        ConfigKey("to", "email_list", required=True),
        ConfigKey("from_email", "email"),
        ConfigKey("smtp_host", max_length=255),
        ConfigKey("smtp_port", "int"),
        ConfigKey("smtp_username", max_length=200),
        ConfigKey("smtp_password", secret=True, max_length=500),
        ConfigKey("smtp_security", "choice", choices=("starttls", "ssl", "none")),
    ),
}
TELEGRAM_API = "https://api.telegram.org"


def _check_value(key: ConfigKey, value: Any) -> tuple[Any, str | None]:
    if key.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            return None, "A port number (1-65535) is required."
        return value, None
    if key.kind == "email_list":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or len(items) > 20:
            return None, "One to 20 e-mail addresses are required."
        for item in items:
            try:
                if not isinstance(item, str):
                    raise DjangoValidationError("")
                validate_email(item)
            except DjangoValidationError:
                return None, f"Not a valid e-mail address: {str(item)[:100]!r}."
        return items, None
    if key.kind == "headers":
        if (
            not isinstance(value, dict)
            or len(value) > 20
            or not all(
                isinstance(k, str)
                and isinstance(v, str)
                and k
                and len(k) <= 100
                and len(v) <= 2000
                and k.isascii()
                and "\n" not in k + v
                and "\r" not in k + v
                for k, v in value.items()
            )
        ):
            return None, "An object of up to 20 header names and string values is required."
        return value, None
    if key.kind == "choice":
        if value not in key.choices:
            return None, f"Must be one of: {', '.join(key.choices)}."
        return value, None
    if key.name == "chat_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None, "A non-empty string is required."
    if len(value) > key.max_length or any(ord(c) < 32 for c in value):
        return None, f"At most {key.max_length} characters, no control characters."
    if key.kind == "email":
        try:
            validate_email(value)
        except DjangoValidationError:
            return None, "Not a valid e-mail address."
    if key.kind == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            return None, "An http(s) URL with a host and no user name or password in it is required."
    return value, None


def config_validate(type: str, config: Any, *, current: dict | None = None) -> dict:
    """The clean configuration of a channel of ``type``; raises ``ValidationFailed``.

    With ``current`` (an update), keys left out keep their stored value, so a secret need not
    be sent again; ``null`` removes an optional key.
    """

    keys = {k.name: k for k in CONFIG_KEYS[type]}
    if not isinstance(config, dict):
        raise ValidationFailed(details={"config": ["An object is required."]})
    errors: dict[str, list[str]] = {}
    for name in sorted(set(config) - set(keys)):
        errors[f"config.{name}"] = [f"Unknown key for a {type} channel; known: {', '.join(keys)}."]
    merged = dict(current or {})
    for name, key in keys.items():
        if name not in config:
            continue
        value = config[name]
        if value is None or (value == "" and not key.required):
            merged.pop(name, None)
            continue
        clean, error = _check_value(key, value)
        if error:
            errors[f"config.{name}"] = [error]
        else:
            merged[name] = clean
    for name, key in keys.items():
        if key.required and name not in merged and f"config.{name}" not in errors:
            errors[f"config.{name}"] = ["This field is required."]
    if not errors:
        for name, key in keys.items():
            if key.kind == "url" and name in merged:
                try:
                    netpolicy.check_url(merged[name], field=f"config.{name}")
                except netpolicy.OutboundRefused as exc:
                    errors.update(exc.details)
        if merged.get("smtp_host"):
            try:
                netpolicy.check_host(merged["smtp_host"], merged.get("smtp_port") or 587, field="config.smtp_host")
            except netpolicy.OutboundRefused as exc:
                errors.update(exc.details)
    if errors:
        raise ValidationFailed(details=errors)
    return merged


def config_public(type: str, config: dict) -> dict:
    """What responses show of a configuration: public keys as they are, secrets ``[HIDDEN]``."""
    shown = {}
    for key in CONFIG_KEYS.get(type, ()):
        if key.name in (config or {}):
            shown[key.name] = HIDDEN if key.secret else config[key.name]
    return shown


def config_secrets(config: dict) -> list[str]:
    """Every secret string of a configuration, to scrub from error messages."""
    values: list[str] = []
    for value in (config or {}).values():
        if isinstance(value, str) and len(value) >= 6:
            values.append(value)
            parts = urlsplit(value)
            if parts.path and len(parts.path) > 6:
                values.append(parts.path)
        elif isinstance(value, dict):
            values += [v for v in value.values() if isinstance(v, str) and len(v) >= 6]
    return values


# --- sending -------------------------------------------------------------------------------------


@dataclass
class SendResult:
    """One attempt's outcome. ``transient`` failures are worth retrying."""

    ok: bool
    status_code: int | None = None
    detail: str = ""
    transient: bool = False
    retry_after: float | None = None
    latency_ms: int = 0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _timeout() -> float:
    return float(getattr(settings, "NOTIFY_HTTP_TIMEOUT", 10.0))


def _pinned_address(host: str, port: int) -> tuple[str | None, str | None]:
    """Resolve ``host`` once and check the address we will connect to: ``(address, refusal)``."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        return None, f"cannot resolve {host}: {exc}"
    address = infos[0][4][0].split("%", 1)[0]
    if reason := netpolicy.host_refusal(address, port):
        return None, reason
    return address, None


def http_post(
    url: str, *, body: bytes, headers: dict[str, str] | None = None, secrets: list[str] | None = None
) -> SendResult:
    """POST ``body`` to ``url`` once, connected to the address the network policy allowed.

    The name is resolved once, the address checked, and the request sent to that address
    (with the name as ``Host`` and TLS server name), so a name that resolves elsewhere a
    moment later cannot redirect it. Redirects are answers, never followed.
    """
    started = time.monotonic()

    def result(**kwargs) -> SendResult:
        detail = kwargs.pop("detail", "")
        for secret in secrets or []:
            detail = detail.replace(secret, "***")
        return SendResult(detail=detail[:1000], latency_ms=int((time.monotonic() - started) * 1000), **kwargs)

    if reason := netpolicy.url_refusal(url):
        return result(ok=False, detail=f"refused by the network policy: {reason}")
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address, refusal = _pinned_address(parts.hostname, port)
    if refusal:
        return result(
            ok=False, detail=f"refused by the network policy: {refusal}", transient=refusal.startswith("cannot resolve")
        )
    netloc = f"[{address}]" if ":" in address else address
    target = urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path or "/", parts.query, ""))
    send_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **(headers or {}),
        "Host": parts.netloc,
    }
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    try:
        with httpx.Client(timeout=_timeout(), follow_redirects=False, trust_env=False) as client:
            response = client.post(target, content=body, headers=send_headers, extensions=extensions)
    except httpx.TransportError as exc:
        return result(ok=False, transient=True, detail=f"{type(exc).__name__}: {exc}")
    code = response.status_code
    text = response.text[:300].strip()
    if 200 <= code < 300:
        return result(ok=True, status_code=code, detail=text)
    if 300 <= code < 400:
        return result(
            ok=False,
            status_code=code,
            detail=f"HTTP {code}: redirects are not followed ({response.headers.get('location', '')[:200]})",
        )
    transient = code == 429 or code >= 500
    return result(
        ok=False,
        status_code=code,
        transient=transient,
        detail=f"HTTP {code}: {text}",
        retry_after=_retry_after(response.headers.get("retry-after")) if transient else None,
    )


def _lines(notice: Notice) -> list[str]:
    lines = [notice.text]
    if notice.error:
        lines.append(f"Error: {notice.error}")
    lines += [f"{k}: {v}" for k, v in notice.facts.items()]
    if notice.timestamp:
        lines.append(f"When: {notice.timestamp}")
    return lines


def plain_text(notice: Notice) -> str:
    text = "\n".join([notice.title, "", *_lines(notice)])
    if notice.link:
        text += f"\n\nOpen: {notice.link}"
    return text


def slack_payload(notice: Notice, config: dict) -> dict:
    # Slack "Incoming webhooks": text is the fallback, blocks the layout.
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in list(notice.facts.items())[:10]]
    body_text = notice.text + (f"\n*Error:* ```{notice.error[:2500]}```" if notice.error else "")
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body_text[:3000]}},
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = f"{notice.level.upper()} · {notice.tenant} · {notice.timestamp}"
    if notice.link:
        context += f" · <{notice.link}|Open in admin>"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    payload: dict[str, Any] = {
        "text": f"{notice.title}\n{'Error: ' + notice.error if notice.error else notice.text}",
        "blocks": blocks,
    }
    for key in ("channel", "username", "icon_emoji"):
        if config.get(key):
            payload[key] = config[key]
    return payload


def discord_payload(notice: Notice, config: dict) -> dict:
    embed: dict[str, Any] = {
        "title": notice.title[:256],
        "description": "\n".join(_lines(notice)[:2])[:4000],
        "color": LEVEL_COLOURS.get(notice.level, 0),
        "footer": {"text": f"{notice.level} · {notice.tenant}"[:2048]},
        "fields": [
            {"name": k[:256], "value": str(v)[:1024], "inline": True} for k, v in list(notice.facts.items())[:25]
        ],
    }
    if notice.link:
        embed["url"] = notice.link
    if notice.timestamp:
        embed["timestamp"] = notice.timestamp
    payload: dict[str, Any] = {"content": notice.title[:2000], "embeds": [embed], "allowed_mentions": {"parse": []}}
    if config.get("username"):
        payload["username"] = config["username"]
    return payload


def teams_payload(notice: Notice, config: dict) -> dict:
    # Teams workflows and incoming webhooks take an Adaptive Card as a message attachment.
    body: list[dict] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": notice.title, "wrap": True},
        {"type": "TextBlock", "text": notice.text, "wrap": True},
    ]
    if notice.error:
        body.append({"type": "TextBlock", "text": f"Error: {notice.error}", "wrap": True, "color": "Attention"})
    facts = [{"title": k, "value": str(v)} for k, v in notice.facts.items()]
    facts.append({"title": "When", "value": notice.timestamp})
    body.append({"type": "FactSet", "facts": facts})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if notice.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in admin", "url": notice.link}]
    return {
        "type": "message",
        "summary": notice.title,
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def generic_payload(notice: Notice, config: dict) -> dict:
    return {
        "event": notice.event_type,
        "level": notice.level,
        "title": notice.title,
        "message": notice.text,
        "error": notice.error or None,
        "tenant": notice.tenant,
        "timestamp": notice.timestamp,
        "link": notice.link or None,
        "facts": notice.facts,
        "data": notice.data,
    }


def telegram_payload(notice: Notice, config: dict) -> dict:
    text = f"<b>{html.escape(notice.title)}</b>\n" + html.escape("\n".join(_lines(notice)))
    if notice.link:
        text += f'\n<a href="{html.escape(notice.link, quote=True)}">Open in admin</a>'
    return {"chat_id": config["chat_id"], "text": text[:4096], "parse_mode": "HTML", "disable_web_page_preview": True}


def render(type: str, notice: Notice, config: dict) -> dict:
    """The JSON body a channel of ``type`` receives for ``notice`` (e-mail: subject and text)."""
    if type == ChannelType.EMAIL:
        return {"subject": f"[{notice.level.upper()}] {notice.title}"[:250], "text": plain_text(notice)}
    return {
        ChannelType.SLACK: slack_payload,
        ChannelType.DISCORD: discord_payload,
        ChannelType.TEAMS: teams_payload,
        ChannelType.WEBHOOK: generic_payload,
        ChannelType.TELEGRAM: telegram_payload,
    }[type](notice, config)


def send(type: str, config: dict, message: dict) -> SendResult:
    """Send a rendered ``message`` through a channel once."""
    import json

    secrets = config_secrets(config)
    if type == ChannelType.EMAIL:
        return send_email(config, message)
    body = json.dumps(message, default=str).encode()
    if type == ChannelType.TELEGRAM:
        base = (config.get("api_url") or TELEGRAM_API).rstrip("/")
        return http_post(f"{base}/bot{config['bot_token']}/sendMessage", body=body, secrets=secrets)
    if type == ChannelType.WEBHOOK:
        return http_post(config["url"], body=body, headers=config.get("headers") or {}, secrets=secrets)
    return http_post(config["webhook_url"], body=body, secrets=secrets)


# --- e-mail ------------------------------------------------------------------------------------


class _SMTP(smtplib.SMTP):
    """smtplib connected to an address we checked, with TLS verified against the host name."""

    def __init__(self, *, server_hostname: str, **kwargs: Any) -> None:
        self._server_hostname = server_hostname
        super().__init__(**kwargs)

    def connect(self, host: str = "localhost", port: int = 0, source_address=None):
        reply = super().connect(host, port, source_address)
        self._host = self._server_hostname  # STARTTLS verifies the certificate for the name
        return reply


class _SMTPSSL(smtplib.SMTP_SSL):
    def __init__(self, *, server_hostname: str, **kwargs: Any) -> None:
        self._server_hostname = server_hostname
        super().__init__(**kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._server_hostname)


def _smtp_settings(config: dict) -> dict:
    if config.get("smtp_host"):
        security = config.get("smtp_security") or "starttls"
        port = config.get("smtp_port") or {"ssl": 465, "starttls": 587}.get(security, 25)
        return {
            "host": config["smtp_host"],
            "port": port,
            "username": config.get("smtp_username") or "",
            "password": config.get("smtp_password") or "",
            "security": security,
            "tenant_target": True,
        }
    # The operator's own mail server (Django's EMAIL_* settings).
    security = "ssl" if settings.EMAIL_USE_SSL else "starttls" if settings.EMAIL_USE_TLS else "none"
    return {
        "host": settings.EMAIL_HOST,
        "port": settings.EMAIL_PORT,
        "username": settings.EMAIL_HOST_USER,
        "password": settings.EMAIL_HOST_PASSWORD,
        "security": security,
        "tenant_target": False,
    }


def send_email(config: dict, message: dict) -> SendResult:
    """Send one e-mail and report the server's reply to the message (code and text)."""
    started = time.monotonic()
    smtp_cfg = _smtp_settings(config)
    secrets = [s for s in (smtp_cfg["password"],) if s]

    def result(**kwargs) -> SendResult:
        detail = kwargs.pop("detail", "")
        for secret in secrets:
            detail = detail.replace(secret, "***")
        return SendResult(detail=detail[:1000], latency_ms=int((time.monotonic() - started) * 1000), **kwargs)

    host, port = smtp_cfg["host"], int(smtp_cfg["port"])
    address = host
    if smtp_cfg["tenant_target"]:
        address, refusal = _pinned_address(host, port)
        if refusal:
            return result(
                ok=False,
                detail=f"refused by the network policy: {refusal}",
                transient=refusal.startswith("cannot resolve"),
            )
    sender = config.get("from_email") or settings.DEFAULT_FROM_EMAIL
    recipients = list(config["to"])
    mail = EmailMessage(subject=message["subject"], body=message["text"], from_email=sender, to=recipients)
    context = ssl.create_default_context()
    try:
        if smtp_cfg["security"] == "ssl":
            smtp: smtplib.SMTP = _SMTPSSL(
                server_hostname=host, host=address, port=port, timeout=_timeout(), context=context
            )
        else:
            smtp = _SMTP(server_hostname=host, host=address, port=port, timeout=_timeout())
        try:
            smtp.ehlo()
            if smtp_cfg["security"] == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if smtp_cfg["username"]:
                smtp.login(smtp_cfg["username"], smtp_cfg["password"])
            code, reply = smtp.mail(sender)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, reply, sender)
            accepted = 0
            refused: list[str] = []
            for rcpt in recipients:
                rcode, rreply = smtp.rcpt(rcpt)
                if rcode in (250, 251):
                    accepted += 1
                else:
                    refused.append(f"{rcpt}: {rcode} {rreply.decode(errors='replace')}")
                    last_code = rcode
            if not accepted:
                smtp.rset()
                return result(
                    ok=False,
                    status_code=last_code,
                    transient=400 <= last_code < 500,
                    detail="every recipient refused: " + "; ".join(refused),
                )
            code, reply = smtp.data(mail.message().as_bytes(linesep="\r\n"))
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return result(
            ok=False,
            status_code=exc.smtp_code,
            transient=400 <= exc.smtp_code < 500,
            detail=f"SMTP {exc.smtp_code} {text}",
        )
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return result(ok=False, transient=True, detail=f"{type(exc).__name__}: {exc}")
    text = reply.decode(errors="replace")
    if code != 250:
        return result(ok=False, status_code=code, transient=400 <= code < 500, detail=f"SMTP {code} {text}")
    detail = f"SMTP {code} {text}"
    if refused:
        detail += " (refused: " + "; ".join(refused) + ")"
    return result(ok=True, status_code=code, detail=detail)
