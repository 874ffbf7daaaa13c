"""Production settings pass Django's deployment checklist."""

import os
import subprocess
import sys

from django.conf import settings

PRODUCTION_ENVIRONMENT = {
    "SECRET_KEY": "p" * 20 + "r0duct10n-s3cr3t-k3y-w1th-3n0ugh-ch4r4ct3rs!",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "app.dumont.cloud",
    "DATABASE_URL": "postgres://dumont@db.internal:5432/dumont",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "DUMONT_HTTPS": "true",
}


def _manage(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENVIRONMENT)

    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_warns_when_https_settings_are_missing():
    insecure = {**PRODUCTION_ENVIRONMENT, "DUMONT_HTTPS": "false"}

    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=insecure)

    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stderr + result.stdout
