"""Logging set-up: JSON lines when not on a terminal, correlation ids on every line, and
secrets masked whatever happens.

The correlation id and the request id live in ``contextvars``: the Slack middleware binds a
correlation id per interaction, code that knows which request it works on binds its id, and
``ContextFilter`` copies both onto every record logged in that context.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import NamedTuple

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is context.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class _Correlation(NamedTuple):
    id: str
    # Taken by a Slack interaction. Socket Mode reuses its threads across interactions, so the
    # next interaction on this thread must not inherit the id: it gets a fresh one.
    taken: bool


_correlation: ContextVar[_Correlation | None] = ContextVar("pimbot_correlation", default=None)
_request_id: ContextVar[str | None] = ContextVar("pimbot_request_id", default=None)


def new_correlation_id() -> str:
    """Short enough to read out to an admin, long enough never to collide in one log."""
    return uuid.uuid4().hex[:12]


def current_correlation_id() -> str | None:
    """The id of the Slack interaction (or sweep) this code runs for, if any."""
    bound = _correlation.get()
    return bound.id if bound else None


def current_request_id() -> str | None:
    return _request_id.get()


def bind_correlation_id(correlation_id: str | None = None) -> str:
    """Bind an id for what this context does next (the HTTP entry point calls this first)."""
    value = correlation_id or new_correlation_id()
    _correlation.set(_Correlation(value, taken=False))
    _request_id.set(None)
    return value


def begin_interaction(request_id: str | None = None) -> str:
    """The correlation id of one Slack interaction: the one its HTTP request was given at the
    door if this is that request, otherwise a fresh one. Binds ``request_id`` too."""
    bound = _correlation.get()
    value = bound.id if bound is not None and not bound.taken else new_correlation_id()
    _correlation.set(_Correlation(value, taken=True))
    _request_id.set(request_id)
    return value


@contextmanager
def log_context(
    *, correlation_id: str | None = None, request_id: str | None = None
) -> Iterator[None]:
    """Bind ids for the ``with`` block only (timers, notifications); unset ones stay as they are."""
    correlation = (
        _correlation.set(_Correlation(correlation_id, taken=True)) if correlation_id else None
    )
    request = _request_id.set(request_id) if request_id else None
    try:
        yield
    finally:
        if request is not None:
            _request_id.reset(request)
        if correlation is not None:
            _correlation.reset(correlation)


class ContextFilter(logging.Filter):
    """Adds ``correlation_id`` and ``request_id`` to every record, unless it names its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        correlation_id = current_correlation_id()
        if correlation_id is not None and not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id
        request_id = _request_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            # SecretMaskingFilter leaves a masked rendering in exc_text; prefer it.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """For a terminal: the classic line, with the ids at the end when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{key}={getattr(record, key)}"
            for key in ("correlation_id", "request_id")
            if getattr(record, key, None)
        ]
        if not ids:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(ids)}]{newline}{rest}"


class SecretMaskingFilter(logging.Filter):
    """Last line of defence: replace any configured secret that reaches a log line, whether
    in the message, in an ``extra=`` value or in an exception's text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        for key, value in vars(record).items():
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._mask(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        return True

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


# Loggers of libraries that put a request body in a log line: Bolt's signature check logs the
# whole body of every request it refuses (at INFO). A forger chooses that body, and its size.
_BODY_LOGGERS = ("slack_bolt.RequestVerification",)


class DropRecords(logging.Filter):
    """Drops every record of the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def keep_request_bodies_out_of_logs() -> None:
    """Silence the library loggers that log request bodies (pimbot's HTTP door logs its own
    refusals without the body). A logger filter, so it holds whatever handlers exist."""
    for name in _BODY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropRecords) for f in logger.filters):
            logger.addFilter(DropRecords())


AUDIT_LOGGER = "pimbot.audit"


def log_audit_event(**fields: object) -> None:
    """One audit entry as a log event (``"event": "audit"``) for a SIEM, after its commit.

    Logged at INFO on ``pimbot.audit``, which ``configure_logging`` keeps at INFO whatever
    ``PIMBOT_LOG_LEVEL`` says: the trail is not chatter. An entry about no request (an identity
    link) keeps the ``request_id`` of the interaction it happened in, like any other line."""
    if fields.get("request_id") is None:
        fields.pop("request_id", None)
    logging.getLogger(AUDIT_LOGGER).info("audit", extra={"event": "audit", **fields})


def configure_logging(*, level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Called once by the composition root; importing pimbot never touches logging."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    add_filters(handler, secrets)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger(AUDIT_LOGGER).setLevel(logging.INFO)
    # A sweep that outlasts its interval is skipped by design (max_instances=1); APScheduler
    # would warn about it on every tick.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def add_filters(handler: logging.Handler, secrets: Iterable[str]) -> None:
    """The filters every pimbot log handler carries: context first, then masking."""
    handler.addFilter(ContextFilter())
    handler.addFilter(SecretMaskingFilter(secrets))
