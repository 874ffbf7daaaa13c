import pytest

from instances.tests.conftest import platform  # noqa: F401  (the fixture, for these tests)


@pytest.fixture
def snapshot_store(tmp_path, settings, monkeypatch):
    """Tenant repositories in a folder of this test, for the test process and the worker."""
    folder = tmp_path / "snapshot-store"
    settings.SNAPSHOT_STORE_URL = str(folder)
    settings.SNAPSHOT_SYNC_INTERVAL_SECONDS = 1.0
    monkeypatch.setenv("SNAPSHOT_STORE_URL", str(folder))
    monkeypatch.setenv("SNAPSHOT_SYNC_INTERVAL_SECONDS", "1")
    return folder


@pytest.fixture
def snapshot_platform(snapshot_store, platform):  # noqa: F811
    """The platform fixture with the snapshot store set before its worker starts."""
    return platform
