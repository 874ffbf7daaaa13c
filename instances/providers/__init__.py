"""The active providers, chosen by settings.GPU_PROVIDER and STANDBY_PROVIDER (read on every call).

Also the boot script every real machine runs (`agent_boot_script`): Vast's `onstart` and GCE's
`startup-script` both run it at each boot, so a stopped machine that starts again runs its agent.
"""

import shlex

from django.conf import settings

from instances.providers.base import GpuProvider, StandbyProvider


def get_provider(name: str | None = None) -> GpuProvider:
    """The provider named `name`, else settings.GPU_PROVIDER ("sim" by default)."""
    name = name or settings.GPU_PROVIDER
    if name == "sim":
        from instances.providers.sim import SimProvider

        return SimProvider(settings.SIM_PROVIDER_URL, settings.SIM_PROVIDER_API_KEY)
    if name == "vast":
        from instances.providers.vast import VastProvider

        return VastProvider(
            settings.VAST_API_URL,
            settings.VAST_API_KEY,
            is_interruptible=settings.VAST_INTERRUPTIBLE,
            timeout_seconds=settings.VAST_TIMEOUT_SECONDS,
            max_retries=settings.VAST_MAX_RETRIES,
            retry_max_sleep_seconds=settings.VAST_RETRY_MAX_SLEEP_SECONDS,
            search_limit=settings.VAST_SEARCH_LIMIT,
            agent_install_spec=settings.AGENT_INSTALL_SPEC,
        )
    raise ValueError(f"unknown GPU provider {name!r} (GPU_PROVIDER)")


def get_standby_provider(name: str | None = None) -> StandbyProvider:
    """The standby provider named `name`, else settings.STANDBY_PROVIDER ("sim" by default)."""
    name = name or settings.STANDBY_PROVIDER
    if name == "sim":
        from instances.providers.sim import SimProvider

        return SimProvider(settings.SIM_PROVIDER_URL, settings.SIM_PROVIDER_API_KEY)
    if name == "gcp":
        from instances.providers.gcp import GcpStandbyProvider

        return GcpStandbyProvider(
            project=settings.GCP_PROJECT,
            zones=settings.GCP_ZONES,
            machine_type=settings.GCP_STANDBY_MACHINE_TYPE,
            image=settings.GCP_STANDBY_IMAGE,
            price_micros_per_hour=settings.STANDBY_PRICE_MICROS_PER_HOUR,
            api_endpoint=settings.GCP_API_ENDPOINT,
            timeout_seconds=settings.GCP_TIMEOUT_SECONDS,
            operation_timeout_seconds=settings.GCP_OPERATION_TIMEOUT_SECONDS,
            agent_install_spec=settings.AGENT_INSTALL_SPEC,
        )
    raise ValueError(f"unknown standby provider {name!r} (STANDBY_PROVIDER)")


def agent_boot_script(
    install_spec: str, ssh_public_keys: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> str:
    """A POSIX shell script that installs `dumont-agent` in a venv and starts it in the background.

    The agent reads DUMONT_API_URL, DUMONT_AGENT_TOKEN, ... from its environment: Vast passes
    them as the container's env; a VM has no such env, so GCE gets them exported here (`env`).
    The keys go to root's authorized_keys. Running it again (every boot) reinstalls nothing new.
    """
    lines = ["#!/bin/sh", "set -e"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    if ssh_public_keys:
        lines.append("mkdir -p /root/.ssh && chmod 700 /root/.ssh")
        lines += [
            f"grep -qxF {shlex.quote(key)} /root/.ssh/authorized_keys 2>/dev/null"
            f" || echo {shlex.quote(key)} >> /root/.ssh/authorized_keys"
            for key in ssh_public_keys
        ]
    lines += [
        "if ! python3 -m venv /opt/dumont-agent 2>/dev/null; then",
        "  apt-get update -qq && apt-get install -y -qq python3-venv",
        "  python3 -m venv /opt/dumont-agent",
        "fi",
        f"/opt/dumont-agent/bin/pip install -q --upgrade {shlex.quote(install_spec)}",
        "nohup /opt/dumont-agent/bin/dumont-agent >> /var/log/dumont-agent.log 2>&1 &",
    ]
    return "\n".join(lines) + "\n"
