"""Logging set-up with a redacting filter on every handler: secrets never reach a log."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

# Tokens recognisable by shape, whether or not they came from this process's environment:
# Slack tokens (xoxb-…, xapp-…), Discord webhook URLs (…/webhooks/<id>/<token>),
# Stripe keys (sk_live_…, rk_test_…), HTTP Authorization values.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"xox[abposr]-[A-Za-z0-9-]+"), "***"),  # xoxb-123-456-abc
    (re.compile(r"xapp-[A-Za-z0-9-]+"), "***"),  # xapp-1-A0-123-abc
    (re.compile(r"(/webhooks/\d+/)[A-Za-z0-9_.-]+"), r"\1***"),  # /webhooks/123/tok
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]+"), "***"),  # sk_test_4eC39HqLyjWD
    (re.compile(r"(?i)(authorization: (?:bearer|basic|bot) )[^\s'\"]+"), r"\1***"),
    (re.compile(r"(?i)([?&](?:token|key|api_key|access_token)=)[^&\s'\"]+"), r"\1***"),
]
REDACTED = "***"


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> RedactingFilter:
    """Configure the root logger once; every handler gets the redacting filter."""
    redactor = RedactingFilter(secrets)
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root.addHandler(stream)
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(redactor)
    # httpx logs every request URL at INFO; keep it at WARNING unless debugging.
    if level != "DEBUG":
        for noisy in ("httpx", "alembic", "apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
