"""Where Chromium is missing, the browser tests are skipped with their reason, never silently."""

import os
import subprocess
import sys

from django.conf import settings


def test_without_chromium_the_browser_tests_skip_and_say_why():
    environment = {**os.environ, "DUMONT_CHROMIUM": "/nonexistent/chromium"}

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "portal/tests/test_browser_pages.py", "-q"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=110,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    reason = "browser tests need Debian's Chromium at /nonexistent/chromium"
    assert any(line.startswith("SKIPPED") and reason in line for line in lines), run.stdout
    assert "skipped" in lines[-1] and "passed" not in lines[-1], lines[-1]
