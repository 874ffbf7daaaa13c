"""The `dumont` command."""

from dumont_client.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app(prog_name="dumont")


__all__ = ["app", "main"]
