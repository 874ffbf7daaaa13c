"""What besides the GPU says a machine is in use, for the API's idle detection.

A machine at 0 % GPU is not idle while someone uploads data into it, works in a shell or serves
a notebook, so each heartbeat carries:
- `workspace_changed`: the continuous sync saw the workspace change within its last two looks;
- `interactive_sessions`: terminals open on the machine (each SSH login or Jupyter terminal
  takes a pseudo-terminal: the entries of /dev/pts);
- `network_bytes_per_second`: traffic since the previous beat, loopback excluded
  (/proc/net/dev).
A simulated machine shares this host's terminals and network, so those two come from its load
profile instead (the simulator's `PUT /v1/machines/{id}/load`); its workspace is real.
"""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path


class ActivityProbe:
    def __init__(self, load_file: Path | None, workspace_changed: Callable[[], bool]):
        self.load_file = load_file
        self.workspace_changed = workspace_changed
        self.last_network: tuple[float, int] | None = None

    def read(self) -> dict:
        report = {"workspace_changed": self.workspace_changed()}
        if self.load_file is not None:
            profile = _profile(self.load_file)
            report["interactive_sessions"] = int(profile.get("interactive_sessions") or 0)
            report["network_bytes_per_second"] = float(profile.get("network_bytes_per_second") or 0)
            return report
        report["interactive_sessions"] = terminal_count()
        rate = self._network_rate()
        if rate is not None:
            report["network_bytes_per_second"] = rate
        return report

    def _network_rate(self) -> float | None:
        total = network_bytes()
        if total is None:
            return None
        now = time.monotonic()
        previous, self.last_network = self.last_network, (now, total)
        if previous is None or now <= previous[0]:
            return None
        return round(max(0, total - previous[1]) / (now - previous[0]), 1)


def _profile(path: Path) -> dict:
    try:
        profile = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return profile if isinstance(profile, dict) else {}


def terminal_count(pts: Path = Path("/dev/pts")) -> int:
    """Open pseudo-terminals (numbered entries; `ptmx` is the multiplexer itself)."""
    try:
        return sum(1 for name in os.listdir(pts) if name.isdigit())
    except OSError:
        return 0


def network_bytes(path: Path = Path("/proc/net/dev")) -> int | None:
    """Bytes received plus sent by every interface but loopback, since boot."""
    try:
        lines = path.read_text().splitlines()[2:]
    except OSError:
        return None
    total = 0
    for line in lines:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        total += int(fields[0]) + int(fields[8])
    return total
