"""The active GPU provider, chosen by settings.GPU_PROVIDER (read on every call)."""

from django.conf import settings

from instances.providers.base import GpuProvider, StandbyProvider


def get_provider(name: str | None = None) -> GpuProvider:
    """The provider named `name`, else settings.GPU_PROVIDER ("sim" by default)."""
    name = name or settings.GPU_PROVIDER
    if name == "sim":
        from instances.providers.sim import SimProvider

        return SimProvider(settings.SIM_PROVIDER_URL, settings.SIM_PROVIDER_API_KEY)
    raise ValueError(f"unknown GPU provider {name!r} (GPU_PROVIDER)")


def get_standby_provider(name: str | None = None) -> StandbyProvider:
    """The standby provider named `name`, else settings.STANDBY_PROVIDER ("sim" by default)."""
    name = name or settings.STANDBY_PROVIDER
    if name == "sim":
        from instances.providers.sim import SimProvider

        return SimProvider(settings.SIM_PROVIDER_URL, settings.SIM_PROVIDER_API_KEY)
    raise ValueError(f"unknown standby provider {name!r} (STANDBY_PROVIDER)")
