"""The run registry: one SQLite row per run, in WAL mode under $XDG_STATE_HOME/olmo-tui/runs.db.

Several processes use it at once (two app instances and a headless command), so:
- every connection sets a busy timeout and every write is one short `BEGIN IMMEDIATE`
  transaction (a writer waits for the lock instead of failing with "database is locked");
- updates name only the columns they change, so two processes refreshing different fields
  of the same run never undo each other;
- the schema version lives in `PRAGMA user_version`; migrations run inside a write
  transaction, so two processes opening an old database at once migrate it exactly once.

The registry stores no secrets: records hold argv (which never carries secret values),
status and a few numbers for the runs table.
"""

from __future__ import annotations

import json
import os
import re
import secrets as _random
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from engine.run_marker import runs_root as engine_runs_root

from .run_status import RunStatus

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class RegistryError(Exception):
    """The registry cannot be used (unwritable state dir, database from a newer olmo-tui)."""


class UnknownRun(RegistryError):
    """No run, or more than one, matches what the user typed (a usage error, exit 2)."""


@dataclass
class RunRecord:
    id: str
    name: str
    backend: str
    run_dir: str
    status: str = RunStatus.QUEUED
    preset: Optional[str] = None
    parent_id: Optional[str] = None
    relation: Optional[str] = None  # how it came from parent_id: "relaunch" or "resume"
    host: str = field(default_factory=socket.gethostname)
    pid: Optional[int] = None  # local: the wrapper process that waits on torchrun
    pgid: Optional[int] = None
    pid_start: Optional[int] = None  # local: the wrapper's start time in clock ticks (pid reuse guard)
    workload_id: Optional[str] = None  # Beaker: experiment / workload id
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    ended: Optional[float] = None
    exit_code: Optional[int] = None
    latest_step: Optional[int] = None
    total_steps: Optional[int] = None
    cancel_requested: Optional[float] = None
    message: Optional[str] = None  # one line for the user: why it failed, what is happening
    argv: List[str] = field(default_factory=list)
    summary: Dict[str, Any] = field(default_factory=dict)  # latest metrics: loss, tps, mfu, ...
    extra: Dict[str, Any] = field(default_factory=dict)  # backend-specific (Beaker URL, job ids)
    sweep: Optional[str] = None  # the sweep this run is a variant of (sweep.py)
    sweep_index: Optional[int] = None  # its place in the sweep's queue
    notes: Optional[str] = None  # the researcher's free text (olmo-tui annotate)
    tags: List[str] = field(default_factory=list)
    archived: bool = False  # hidden from `olmo-tui runs` and the runs table unless asked for

    @property
    def waiting_in_queue(self) -> bool:
        """A sweep variant not launched yet: nothing runs, so there is nothing to refresh."""
        return self.status == RunStatus.QUEUED and self.sweep is not None and self.started is None

    @property
    def terminal(self) -> bool:
        return self.status in RunStatus.TERMINAL

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


COLUMNS = [f.name for f in fields(RunRecord)]
JSON_COLUMNS = {"argv", "summary", "extra", "tags"}

def _add_sweeps(db: sqlite3.Connection) -> None:
    """Sweeps (sweep.py): each variant is a runs row tagged with its sweep and queue index;
    the sweeps table holds what the queue worker needs (parallelism, notify hook, worker pid)."""
    db.execute("ALTER TABLE runs ADD COLUMN sweep TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN sweep_index INTEGER")
    db.execute("CREATE INDEX runs_sweep ON runs (sweep, sweep_index)")
    db.execute(
        """CREATE TABLE sweeps (
            name TEXT PRIMARY KEY, created REAL NOT NULL, max_parallel INTEGER NOT NULL,
            spec TEXT NOT NULL DEFAULT '{}', worker_pid INTEGER, worker_start INTEGER,
            ended REAL, message TEXT
        )"""
    )


# Each entry upgrades the schema from version i to i + 1. Append only; never edit a shipped one.
MIGRATIONS: List[Callable[[sqlite3.Connection], None]] = [
    lambda db: db.execute(
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, run_dir TEXT NOT NULL,
            status TEXT NOT NULL, preset TEXT, parent_id TEXT, relation TEXT, host TEXT,
            pid INTEGER, pgid INTEGER, pid_start INTEGER, workload_id TEXT,
            created REAL NOT NULL, started REAL, ended REAL, exit_code INTEGER,
            latest_step INTEGER, total_steps INTEGER, cancel_requested REAL, message TEXT,
            argv TEXT NOT NULL DEFAULT '[]', summary TEXT NOT NULL DEFAULT '{}',
            extra TEXT NOT NULL DEFAULT '{}'
        )"""
    ),
    lambda db: db.execute("CREATE INDEX runs_created ON runs (created)"),
    _add_sweeps,
    lambda db: [db.execute(sql) for sql in ("ALTER TABLE runs ADD COLUMN notes TEXT",
                                            "ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'",
                                            "ALTER TABLE runs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0")],
]
SCHEMA_VERSION = len(MIGRATIONS)


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "olmo-tui"


def runs_root() -> Path:
    """Where run directories go: $OLMO_TUI_RUNS_DIR, else $XDG_DATA_HOME/olmo-tui/runs. The
    engine's default too (`olmo-train NAME` -> <runs root>/NAME): one definition, the engine's."""
    return engine_runs_root()


def new_run_id(name: str, now: Optional[float] = None) -> str:
    """'<name>-YYYYmmdd-HHMMSS-<4 hex>': sorts by time, safe as a folder name whatever the
    run name holds (no separators, no '..')."""
    safe = re.sub(r"\.{2,}", ".", SAFE_NAME.sub("-", name)).strip("-.")[:40] or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time()))
    return f"{safe}-{stamp}-{_random.token_hex(2)}"


class Registry:
    """Open with Registry() (the XDG default) or Registry(path). Thread-safe: one SQLite
    connection per thread."""

    def __init__(self, path: Optional[Path] = None):
        self.path = Path(path) if path else state_dir() / "runs.db"
        self._local = threading.local()

    # ---- connection and schema ----------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = self._open()
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError):  # cannot open / write: not the file's content
                    raise RegistryError(f"cannot open the run registry {self.path}: {exc} "
                                        "(set XDG_STATE_HOME to a writable folder)") from exc
                db = self._set_aside_and_reopen(exc)
            except OSError as exc:
                raise RegistryError(f"cannot open the run registry {self.path}: {exc} "
                                    "(set XDG_STATE_HOME to a writable folder)") from exc
            self._local.db = db
        return db

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 30000")
            self._enable_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; an OS crash may lose the last commit
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":  # ms for a registry's size
                raise sqlite3.DatabaseError("database disk image is malformed")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside_and_reopen(self, exc: sqlite3.DatabaseError) -> sqlite3.Connection:
        """A registry file that is not a database (truncated, overwritten): kept beside as
        runs.db.corrupt-<time> for a look, and a new one started. The records come back from the
        run dirs on the next look (runs/reconcile.py, discovery.py): nothing is lost but
        columns no run dir keeps (a Beaker job's id)."""
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:
                pass
            except OSError as move_error:
                raise RegistryError(f"the run registry {self.path} is damaged ({exc}) and cannot be moved "
                                    f"aside ({move_error}): move it away by hand; it is rebuilt from the run "
                                    "dirs") from exc
        print(f"warning: the run registry {self.path} was damaged ({exc}): kept as {aside.name}; its runs are "
              "recorded again from their run dirs", file=sys.stderr)
        try:
            return self._open()
        except (OSError, sqlite3.Error) as again:
            raise RegistryError(f"cannot open the run registry {self.path}: {again} "
                                "(set XDG_STATE_HOME to a writable folder)") from again

    @staticmethod
    def _enable_wal(db: sqlite3.Connection) -> None:
        # Switching to WAL needs a moment without other connections in a transaction; it is
        # persistent, so only the first opener ever has to wait for it.
        for _ in range(100):
            try:
                if db.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() == "wal":
                    return
            except sqlite3.OperationalError:
                pass
            time.sleep(0.05)

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise RegistryError(
                f"{self.path} was written by a newer olmo-tui (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade olmo-tui"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            for step in MIGRATIONS[version:]:
                step(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # ---- rows ---------------------------------------------------------------------------

    @staticmethod
    def _encode(name: str, value: Any) -> Any:
        return json.dumps(value) if name in JSON_COLUMNS else value

    @staticmethod
    def _decode(row: sqlite3.Row) -> RunRecord:
        data = {key: row[key] for key in row.keys() if key in COLUMNS}
        for key in JSON_COLUMNS:
            if key in data:
                data[key] = json.loads(data[key] or ("[]" if key in ("argv", "tags") else "{}"))
        if "archived" in data:
            data["archived"] = bool(data["archived"])
        return RunRecord(**data)

    def query(self, sql: str, params: tuple = ()) -> List[sqlite3.Row]:
        """Rows of one read (for tables other modules own, e.g. sweeps)."""
        return self._db().execute(sql, params).fetchall()

    def write(self, sql: str, params: tuple = ()) -> int:
        """One statement in its own short write transaction; the number of rows it changed."""
        return self._write(sql, params)

    def _write(self, sql: str, params: tuple) -> int:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            count = db.execute(sql, params).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return count

    def add(self, run: RunRecord) -> RunRecord:
        self.add_all([run])
        return run

    def add_all(self, runs: List[RunRecord], also: Optional[tuple] = None) -> None:
        """Insert several runs (and one more statement `also` = (sql, params)) in one
        transaction: all of them land, or none (a sweep's queue is never half written)."""
        marks = ", ".join("?" for _ in COLUMNS)
        sql = f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({marks})"
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            if also is not None:
                db.execute(*also)
            for run in runs:
                db.execute(sql, tuple(self._encode(name, getattr(run, name)) for name in COLUMNS))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def update(self, run_id: str, **changes: Any) -> None:
        """Set only the named fields of one run."""
        unknown = set(changes) - set(COLUMNS) or ({"id"} & set(changes))
        if unknown:
            raise ValueError(f"not updatable run fields: {sorted(unknown)}")
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)
        values = tuple(self._encode(name, value) for name, value in changes.items())
        self._write(f"UPDATE runs SET {assignments} WHERE id = ?", (*values, run_id))

    def save_changes(self, before: RunRecord, after: RunRecord) -> RunRecord:
        """Write the fields in which `after` differs from `before` (what a backend changed)."""
        changed = {name: getattr(after, name) for name in COLUMNS
                   if name != "id" and getattr(after, name) != getattr(before, name)}
        self.update(after.id, **changed)
        return after

    def transition(self, run_id: str, from_status: str, **changes: Any) -> bool:
        """Set fields only if the run is still in `from_status` (compare-and-set): of two
        processes racing to start or cancel a queued run exactly one wins."""
        if not changes:
            raise ValueError("transition needs at least one change")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        values = tuple(self._encode(name, value) for name, value in changes.items())
        return self._write(f"UPDATE runs SET {assignments} WHERE id = ? AND status = ?",
                           (*values, run_id, from_status)) == 1

    def of_sweep(self, sweep: str) -> List[RunRecord]:
        """The runs of one sweep in queue order."""
        rows = self._db().execute("SELECT * FROM runs WHERE sweep = ? ORDER BY sweep_index", (sweep,))
        return [self._decode(row) for row in rows]

    def remove(self, run_id: str) -> bool:
        return self._write("DELETE FROM runs WHERE id = ?", (run_id,)) > 0

    def get(self, run_id: str) -> Optional[RunRecord]:
        row = self._db().execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return self._decode(row) if row else None

    def all(self) -> List[RunRecord]:
        """Every run, newest first."""
        return [self._decode(row) for row in self._db().execute("SELECT * FROM runs ORDER BY created DESC")]

    def count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def find(self, ref: str) -> RunRecord:
        """A run by exact id, name (the newest run of that name), or unique id prefix."""
        exact = self.get(ref)
        if exact:
            return exact
        row = self._db().execute("SELECT * FROM runs WHERE name = ? ORDER BY created DESC LIMIT 1", (ref,)).fetchone()
        if row:
            return self._decode(row)
        like = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._db().execute(
            "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY created DESC", (like,)
        ).fetchall()
        if len(rows) == 1:
            return self._decode(rows[0])
        if len(rows) > 1:
            ids = ", ".join(row["id"] for row in rows[:5])
            raise UnknownRun(f"run {ref!r} is ambiguous: matches {ids}{' ...' if len(rows) > 5 else ''}")
        raise UnknownRun(f"no run {ref!r}; see `olmo-tui runs` for ids")


TAG_MAX = 64


def tag_problem(tag: str) -> Optional[str]:
    """Why `tag` cannot be a run's tag (None when it can): the CLI and the app share the rule."""
    if not tag.strip() or "," in tag or len(tag) > TAG_MAX:
        return f"{tag!r} is not a tag (1-{TAG_MAX} characters, no comma)"
    return None


def updated(run: RunRecord, **changes: Any) -> RunRecord:
    return replace(run, **changes)
