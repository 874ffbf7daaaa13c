"""The snapshot engine: deduplicated, compressed, encrypted snapshots of a directory tree.

Django-free on purpose: the agent runs it on GPU machines. Start with
`Repository.open(open_store("s3://bucket/prefix"), secret)`; `python -m snapshots.engine` is
the command line. `formats.py` describes what a repository stores.
"""

from snapshots.engine.exceptions import (
    DamagedData,
    EngineError,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongKey,
)
from snapshots.engine.formats import SnapshotInfo
from snapshots.engine.maintenance import PruneResult, RetentionPolicy, SnapshotDiff, VerifyReport
from snapshots.engine.repository import Progress, Repository, RepositoryStats
from snapshots.engine.restore import RestoreResult
from snapshots.engine.store import LocalStore, S3Store, Store, StoredObject, open_store

__all__ = [
    "DamagedData",
    "EngineError",
    "LocalStore",
    "Progress",
    "PruneResult",
    "Repository",
    "RepositoryExists",
    "RepositoryNotFound",
    "RepositoryStats",
    "RestoreResult",
    "RetentionPolicy",
    "S3Store",
    "SnapshotDiff",
    "SnapshotInfo",
    "SnapshotNotFound",
    "Store",
    "StoredObject",
    "VerifyReport",
    "WrongKey",
    "open_store",
]
