"""Who runs the schedule: exactly one process per database.

On PostgreSQL, several instances may run; the one holding a session-level
``pg_try_advisory_lock`` runs the schedule and re-checks it before each job (a lost
connection means a lost lock: the instance stops its schedule and stands by). The lock's
key is derived from the database and schema names, so two kpibot deployments sharing a
server (in different schemas) do not block each other.

On SQLite, one process is the supported set-up: a second process finds the lock file taken
(``<database>.scheduler.lock``, held with ``flock`` for the process's life) and refuses to
start its scheduler, saying so.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)


def lock_key(database: str, schema: str) -> int:
    """A signed 64-bit advisory lock key for one kpibot database (and schema)."""
    digest = hashlib.blake2b(f"kpibot:{database}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ScheduleLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Any = None
        self._key: int | None = None
        self._held = False
        self._file: IO[str] | None = None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def acquire(self) -> bool:
        """Take the lock if it is free; True if this process holds it (again)."""
        if self.backend == "postgresql":
            return self._acquire_postgres()
        if self._file is not None:
            return True
        path = self._lock_path()
        file = open(path, "a+")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return False
        file.seek(0)
        file.truncate()
        file.write(str(os.getpid()))
        file.flush()
        self._file = file
        return True

    def _acquire_postgres(self) -> bool:
        if self._held and self.still_held():
            return True  # advisory locks stack: never take it twice in one session
        try:
            if self._conn is None:
                self._conn = self.engine.connect()
                database, schema = self._conn.execute(
                    text("SELECT current_database(), current_schema()")
                ).one()
                self._key = lock_key(database, schema or "public")
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
            ).scalar()
            self._conn.commit()
        except Exception:
            log.warning("could not reach PostgreSQL for the schedule lock", exc_info=True)
            self._drop_connection()
            return False
        self._held = bool(got)
        return self._held

    def still_held(self) -> bool:
        """Re-checked before each job: a PostgreSQL session that died took its lock along."""
        if self.backend != "postgresql":
            return self._file is not None
        if self._conn is None or not self._held:
            return False
        assert self._key is not None
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND classid = :hi AND objid = :lo "
                    "AND objsubid = 1"
                ),
                {"hi": (self._key >> 32) & 0xFFFFFFFF, "lo": self._key & 0xFFFFFFFF},
            ).scalar()
            self._conn.commit()
        except Exception:
            log.warning("schedule lock connection lost")
            self._drop_connection()
            return False
        self._held = bool(held)
        return self._held

    def release(self) -> None:
        if self._conn is not None:
            try:
                if self._held:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                    self._conn.commit()
            except Exception:
                log.debug("releasing the schedule lock failed", exc_info=True)
            self._drop_connection()
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def describe_holder(self) -> str:
        """Who holds the SQLite lock file, for the refusal message."""
        if self.backend == "postgresql":
            return "another instance"
        path = self._lock_path()
        try:
            pid = path.read_text().strip()
        except OSError:
            pid = ""
        return f"process {pid}, lock file {path}" if pid else f"lock file {path}"

    def _drop_connection(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                log.debug("closing the lock connection failed", exc_info=True)
            self._conn = None

    def _lock_path(self) -> Path:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return Path(os.environ.get("TMPDIR", "/tmp")) / f"kpibot-{os.getpid()}.lock"
        return Path(database + ".scheduler.lock")
