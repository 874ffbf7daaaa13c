"""A bench's own database on this machine's Postgres (as for `make test`), made anew each time.

The bench sets DATABASE_URL to it before calling: `manage.py migrate` runs in a subprocess with
the bench's environment.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PSQL = ["-h", "127.0.0.1", "-U", "postgres"]


def migrate() -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, check=True)


def create_database(name: str) -> None:
    """Drops `name` if it exists, creates it and migrates it."""
    subprocess.run(["dropdb", *PSQL, "--if-exists", name], check=True)
    subprocess.run(["createdb", *PSQL, name], check=True)
    migrate()
