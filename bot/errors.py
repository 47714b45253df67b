"""Errors of the running bot.

::

    KpibotError
    ├── ConfigError         a setting is wrong: names the key, what was wrong, the fix
    ├── DatabaseNotReady    the database is missing tables or migrations: names the command
    └── PlatformError       a chat platform refused or failed a post (not_in_channel, 429 …)

User input errors in ``/kpi`` are ``metrics.errors.QueryError``; sync errors are in
``integrations.errors``.
"""

from __future__ import annotations


class KpibotError(Exception):
    pass


class ConfigError(KpibotError):
    def __init__(self, key: str, problem: str, fix: str) -> None:
        super().__init__(f"{key}: {problem}. Fix: {fix}")
        self.key = key
        self.problem = problem
        self.fix = fix


class DatabaseNotReady(KpibotError):
    pass


class PlatformError(KpibotError):
    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
