"""The active GPU provider, chosen by settings.GPU_PROVIDER (read on every call)."""

from django.conf import settings

from instances.providers.base import GpuProvider


def get_provider(name: str | None = None) -> GpuProvider:
    """The provider named `name`, else settings.GPU_PROVIDER ("sim" by default)."""
    name = name or settings.GPU_PROVIDER
    if name == "sim":
        from instances.providers.sim import SimProvider

        return SimProvider(settings.SIM_PROVIDER_URL, settings.SIM_PROVIDER_API_KEY)
    raise ValueError(f"unknown GPU provider {name!r} (GPU_PROVIDER)")
