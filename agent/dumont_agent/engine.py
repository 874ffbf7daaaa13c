"""The snapshot engine as the agent uses it: back up, restore and list one repository's snapshots.

Two ways to run it, chosen by the config's `engine_command`:
- `LibraryEngine` (the default, when the `snapshots.engine` package is importable): in the agent's
  own process. A standby follows and a GPU syncs every few seconds, so a process start per sync
  (interpreter, imports, the key's scrypt) would cost more CPU than the sync itself; here an
  opened repository is kept between operations and only what is new in the store is read.
- `CommandEngine` (when `engine_command` names one): a subprocess per operation, which prints
  progress as JSON lines on stderr and its result as JSON on stdout, for an engine installed
  apart from the agent. The repository, its secret and the storage token go in its
  environment, never on its command line (other users of the machine can read command lines).

The repository is the control plane's storage gateway (`https://.../storage/v1/`), reached with
a short-lived storage token that storage.py keeps fresh; a folder or `s3://` location (with
credentials in the args) still opens directly, for tests and engines run by hand.

Both return the engine CLI's JSON documents and raise JobFailed with a one-line reason.
"""

import contextlib
import dataclasses
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator

from dumont_agent.storage import StorageAccess

Progress = Callable[[dict], None]


class JobFailed(Exception):
    """The engine failed; the message is its one-line reason."""


class Engine:
    storage: StorageAccess

    def backup(self, args: dict, path: str, tags: list[str], on_progress: Progress) -> dict:
        raise NotImplementedError

    def restore(self, args: dict, snapshot_id: str, target: str, on_progress: Progress) -> dict:
        raise NotImplementedError

    def snapshots(self, args: dict) -> list[dict]:
        raise NotImplementedError


def _ignore(report: dict) -> None:
    return None


class CommandEngine(Engine):
    """Runs `command` (`python -m snapshots.engine` or another build of it) once per operation."""

    def __init__(self, command: list[str], storage: StorageAccess | None = None):
        self.command = command
        self.storage = storage or StorageAccess()

    def backup(self, args, path, tags, on_progress):
        tag_arguments = [argument for tag in tags for argument in ("--tag", tag)]
        return self.run(["backup", path, *tag_arguments], args, on_progress)

    def restore(self, args, snapshot_id, target, on_progress):
        return self.run(["restore", snapshot_id, target], args, on_progress)

    def snapshots(self, args):
        return self.run(["snapshots"], args, _ignore)

    def environment(self, args: dict) -> dict[str, str]:
        """The engine process's environment. Its storage token is renewed here, before each
        operation, and must outlive it (STORAGE_TOKEN_SECONDS; half of it is left at least)."""
        args = self.storage.complete(args)
        env = dict(os.environ)
        env["DUMONT_SNAPSHOT_REPOSITORY"] = str(args.get("repository", ""))
        env["DUMONT_SNAPSHOT_SECRET"] = str(args.get("secret", ""))
        if str(args.get("repository", "")).startswith(("http://", "https://")):
            env["DUMONT_STORAGE_TOKEN"] = self.storage.token()
        for key, variable in (
            ("endpoint_url", "DUMONT_SNAPSHOT_ENDPOINT_URL"),
            ("access_key_id", "AWS_ACCESS_KEY_ID"),
            ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("region", "AWS_DEFAULT_REGION"),
        ):
            if args.get(key):
                env[variable] = str(args[key])
        return env

    def run(self, arguments: list[str], args: dict, on_progress: Progress):
        """Run one engine command; returns its JSON result or raises JobFailed."""
        try:
            environment = self.environment(args)
        except OSError as error:  # no storage token to be had
            raise JobFailed(f"error: {error}") from error
        process = subprocess.Popen(
            [*self.command, "--json", "--progress-jsonl", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            text=True,
        )
        errors: list[str] = []

        def read_stderr() -> None:
            for line in process.stderr:
                if line.startswith("{"):
                    try:
                        on_progress(json.loads(line))
                        continue
                    except ValueError:
                        pass
                if line.strip():
                    errors.append(line.strip())

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        output = process.stdout.read()
        process.wait()
        reader.join(timeout=5)
        if process.returncode != 0:
            raise JobFailed(errors[-1] if errors else f"engine exited with {process.returncode}")
        try:
            return json.loads(output)
        except ValueError as error:
            raise JobFailed(f"the engine printed no JSON result ({error})") from error


class LibraryEngine(Engine):
    """The engine in this process. Opened repositories are pooled per location and secret: an
    operation takes one to itself (operations at once get their own), refreshes what other
    machines may have changed, and gives it back, so the next one skips the key derivation and
    reads only the index objects and manifests that are new."""

    IDLE_PER_REPOSITORY = 2

    def __init__(self, storage: StorageAccess | None = None):
        self.storage = storage or StorageAccess()
        self.lock = threading.Lock()
        self.idle: dict[tuple, list] = {}
        # Imported here, in the main thread: the jobs' threads importing it at once would see
        # its modules half initialised. Without it only the jobs fail; the heartbeat (and
        # hibernation, which needs no engine) go on.
        try:
            from snapshots.engine import exceptions, repository, store
        except ImportError as error:
            self.missing = f"the snapshot engine is not installed here ({error})"
        else:
            self.missing = ""
            self.EngineError = exceptions.EngineError
            self.Repository = repository.Repository
            self.open_store = store.open_store

    def backup(self, args, path, tags, on_progress):
        with self._opened(args) as repository:
            info = repository.backup(path, progress=_reporting(on_progress), tags=tags)
        return info.to_dict()

    def restore(self, args, snapshot_id, target, on_progress):
        with self._opened(args) as repository:
            result = repository.restore(snapshot_id, target, progress=_reporting(on_progress))
        return dataclasses.asdict(result)

    def snapshots(self, args):
        with self._opened(args) as repository:
            return [info.to_dict() for info in repository.snapshots()]

    @contextlib.contextmanager
    def _opened(self, args: dict) -> Iterator:
        if self.missing:
            raise JobFailed(self.missing)
        try:
            args = self.storage.complete(args)
        except OSError as error:  # no storage token to be had
            raise JobFailed(f"error: {error}") from error
        # Not the token: it changes every hour, the repository does not (the store asks
        # self.storage for the current token at each request).
        key = tuple(
            str(args.get(name) or "")
            for name in (
                "repository",
                "secret",
                "endpoint_url",
                "access_key_id",
                "secret_access_key",
                "region",
            )
        )
        try:
            with self.lock:
                idle = self.idle.get(key)
                repository = idle.pop() if idle else None
            if repository is None:
                repository = self._open(key)
            else:
                repository.refresh()
            yield repository
        except self.EngineError as error:
            raise JobFailed(f"error: {error}") from error
        except OSError as error:
            raise JobFailed(f"error: {error}") from error
        except Exception as error:
            if type(error).__module__.startswith(("botocore", "boto3")):
                raise JobFailed(f"error: {error}".replace("\n", " ")) from error
            raise
        else:
            with self.lock:
                idle = self.idle.setdefault(key, [])
                if len(idle) < self.IDLE_PER_REPOSITORY:
                    idle.append(repository)

    def _open(self, key: tuple):
        location, secret, endpoint_url, access_key_id, secret_access_key, region = key
        if not location:
            raise self.EngineError("no repository in the command's arguments")
        if not secret:
            raise self.EngineError("no master secret in the command's arguments")
        credentials = {
            name: value
            for name, value in (
                ("access_key_id", access_key_id),
                ("secret_access_key", secret_access_key),
                ("region_name", region),
            )
            if value
        }
        if location.startswith(("http://", "https://")):
            store = self.open_store(location, token=self.storage.token)
        else:
            store = self.open_store(location, endpoint_url=endpoint_url or None, **credentials)
        return self.Repository.open(store, secret)


def _reporting(on_progress: Progress):
    return lambda progress: on_progress(dataclasses.asdict(progress))


def make_engine(command: list[str] | None, config=None) -> Engine:
    """The engine named by the config: a command, else the library in this process. With the
    agent's config, it renews storage tokens through the API with the agent's own token."""
    storage = StorageAccess(config.api_url, config.token) if config is not None else None
    return CommandEngine(command, storage) if command else LibraryEngine(storage)
