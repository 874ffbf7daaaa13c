"""dumont-agent: the instance-side daemon of Dumont Cloud (stdlib only)."""

__version__ = "0.1.0"
