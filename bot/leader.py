"""Who runs the schedule: exactly one process per database.

On PostgreSQL, several instances may run; the one holding a session-level
``pg_try_advisory_lock`` runs the schedule and re-checks it before each job (a lost
connection means a lost lock). On SQLite, one process is the supported set-up: a second
process finds the lock file taken and refuses to start its scheduler, saying so.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

LOCK_KEY = 0x6B7069626F74  # "kpibot"


class ScheduleLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Any = None
        self._file: IO[str] | None = None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def acquire(self) -> bool:
        if self.backend == "postgresql":
            if self._conn is None:
                self._conn = self.engine.connect()
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}
            ).scalar()
            self._conn.commit()
            return bool(got)
        path = self._lock_path()
        self._file = open(path, "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            return False
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()
        return True

    def still_held(self) -> bool:
        """Re-checked before each job: a PostgreSQL session that died took its lock along."""
        if self.backend != "postgresql":
            return self._file is not None
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND objid = :lo AND classid = :hi"
                ),
                {"lo": LOCK_KEY & 0xFFFFFFFF, "hi": LOCK_KEY >> 32},
            ).scalar()
            self._conn.commit()
            return bool(held)
        except Exception:
            log.warning("schedule lock connection lost")
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                self._conn.commit()
                self._conn.close()
            except Exception:
                pass
            self._conn = None
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def _lock_path(self) -> Path:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return Path(os.environ.get("TMPDIR", "/tmp")) / f"kpibot-{os.getpid()}.lock"
        return Path(database + ".scheduler.lock")
