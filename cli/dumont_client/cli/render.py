"""How the CLI shows things: rich tables on stdout, JSON with --json, one error line on stderr."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dumont_client.errors import AuthenticationError, DumontError, NoCapacity
from dumont_client.models import ApiObject

console = Console(highlight=False)
# Spinners and progress bars go to stderr, so `--json` output on stdout stays parseable.
progress_console = Console(stderr=True, highlight=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, ApiObject):
        return value.raw
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def print_json(value: Any) -> None:
    if isinstance(value, ApiObject):
        value = value.raw
    elif isinstance(value, list):
        value = [item.raw if isinstance(item, ApiObject) else item for item in value]
    typer.echo(json.dumps(value, indent=2, default=_jsonable))


def text(value: Any) -> str:
    """One cell: blanks for nothing, short times, money left as the API wrote it."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def usd(value: float | None) -> str:
    """A price per hour: up to four significant digits ($0.3945)."""
    return "-" if value is None else f"${value:.4g}"


def cost(value: float | None) -> str:
    """An amount: cents ($1,234.50)."""
    return "-" if value is None else f"${value:,.2f}"


def table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    output = Table(title=title, show_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        # The first column is an id people copy: never cut or wrap it.
        output.add_column(column, no_wrap=index == 0, overflow="fold")
    for row in rows:
        output.add_row(*(text(cell) for cell in row))
    console.print(output)


def fields(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    output = Table(title=title, show_header=False, show_edge=False, box=None)
    output.add_column(style="bold", no_wrap=True)
    output.add_column(overflow="fold")
    for name, value in pairs:
        output.add_row(name, text(value))
    console.print(output)


def error_line(error: DumontError) -> str:
    """The single line a failed command prints on stderr."""
    line = f"error: {error.code}: {error.detail}"
    if isinstance(error, NoCapacity) and error.alternatives:
        choices = "; ".join(
            f"{choice.get('gpu_count', 1)} x {choice.get('gpu')} in {choice.get('region')} "
            f"at ${choice.get('price_per_hour')}/h ({choice.get('why', '')})"
            for choice in error.alternatives
        )
        line += f" Alternatives: {choices}"
    elif isinstance(error, AuthenticationError):
        line += " (run `dumont login`)"
    return " ".join(line.split())  # a detail with newlines still makes one line
