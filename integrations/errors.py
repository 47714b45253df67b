"""Errors raised while syncing a source.

::

    IntegrationError
    ├── InvalidRecord            one record cannot be mapped: skipped, counted, logged (id, reason)
    └── SyncError                a stream cannot go on: the runner records it, other streams go on
        ├── RetriableSyncError   429, 5xx, connection errors, timeouts, garbled or truncated
        │                        responses: retried with backoff until the retry budget is spent
        └── FatalSyncError       401, 403, 404, a misconfigured source: never retried

Messages never contain secrets: connectors build them from status codes, paths and ids.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Base of every error raised by ``integrations``."""


class InvalidRecord(IntegrationError):
    def __init__(self, reason: str, record_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record_id = record_id


class SyncError(IntegrationError):
    pass


class RetriableSyncError(SyncError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalSyncError(SyncError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status that caused it, if any
