"""The simulator's persistent state: one SQLite file, so machines survive a restart."""

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS machines (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    offer_id TEXT NOT NULL,
    gpu TEXT NOT NULL,
    gpu_count INTEGER NOT NULL,
    region TEXT NOT NULL,
    price_micros_per_hour INTEGER NOT NULL,
    instance_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    ssh_port INTEGER NOT NULL,
    folder TEXT NOT NULL,
    created_at REAL NOT NULL,
    ready_at REAL NOT NULL,
    pid INTEGER
)
"""


@dataclass
class MachineRow:
    id: str
    idempotency_key: str
    state: str  # starting | running | stopped | interrupted | destroyed
    offer_id: str
    gpu: str
    gpu_count: int
    region: str
    price_micros_per_hour: int
    instance_id: str
    spec: dict = field(default_factory=dict)
    ssh_port: int = 0
    folder: str = ""
    created_at: float = 0.0
    ready_at: float = 0.0
    pid: int | None = None


class Store:
    """Machines in SQLite; one lock serialises the server's threads (the load is tiny)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(SCHEMA)

    def _row(self, values) -> MachineRow | None:
        if values is None:
            return None
        row = MachineRow(*values)
        row.spec = json.loads(row.spec)
        return row

    def get(self, machine_id: str) -> MachineRow | None:
        with self.lock:
            cursor = self.db.execute("SELECT * FROM machines WHERE id = ?", (machine_id,))
            return self._row(cursor.fetchone())

    def by_key(self, key: str) -> MachineRow | None:
        with self.lock:
            cursor = self.db.execute("SELECT * FROM machines WHERE idempotency_key = ?", (key,))
            return self._row(cursor.fetchone())

    def all(self, *states: str) -> list[MachineRow]:
        with self.lock:
            if states:
                marks = ",".join("?" for _ in states)
                cursor = self.db.execute(
                    f"SELECT * FROM machines WHERE state IN ({marks}) ORDER BY created_at", states
                )
            else:
                cursor = self.db.execute("SELECT * FROM machines ORDER BY created_at")
            return [self._row(values) for values in cursor.fetchall()]

    def insert(self, row: MachineRow) -> None:
        values = asdict(row)
        values["spec"] = json.dumps(row.spec)
        names = ",".join(values)
        marks = ",".join(f":{name}" for name in values)
        with self.lock:
            self.db.execute(f"INSERT INTO machines ({names}) VALUES ({marks})", values)

    def update(self, machine_id: str, **values) -> None:
        assignments = ",".join(f"{name} = :{name}" for name in values)
        with self.lock:
            self.db.execute(
                f"UPDATE machines SET {assignments} WHERE id = :id", {**values, "id": machine_id}
            )

    def taken(self) -> dict[str, int]:
        """Our machines holding capacity, per offer id."""
        with self.lock:
            cursor = self.db.execute(
                "SELECT offer_id, COUNT(*) FROM machines "
                "WHERE state IN ('starting', 'running') GROUP BY offer_id"
            )
            return dict(cursor.fetchall())


def now() -> float:
    return time.time()
