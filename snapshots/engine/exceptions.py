"""Errors of the snapshot engine. Each has a one-line message the CLI prints as is."""


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class WrongKey(EngineError):
    """The master secret does not unlock this repository."""


class RepositoryNotFound(EngineError):
    """No repository config at this location."""


class RepositoryExists(EngineError):
    """`init` on a location that already holds a repository."""


class SnapshotNotFound(EngineError):
    """No snapshot with this id (or id prefix)."""


class ObjectNotFound(EngineError):
    """A store has no object under this key."""


class ObjectExists(EngineError):
    """A create-only put (`put_new`, or any put through the storage gateway outside `locks/`)
    found an object already under this key."""


class GatewayRefused(EngineError):
    """The storage gateway refused a request: the machine's token, or a key or a write the
    gateway does not allow (snapshots/gateway.py)."""


class DamagedData(EngineError):
    """A blob failed authentication or its id check: names the pack and the files it breaks."""

    def __init__(self, message: str, damaged_packs: list[str], affected_paths: list[str]):
        super().__init__(message)
        self.damaged_packs = damaged_packs
        self.affected_paths = affected_paths
