"""`dumont`: instances, snapshots, billing and the spot market from a terminal.

Every API failure ends the command with exit code 1 and one line on stderr
(`error: <code>: <detail>`), never a traceback.
"""

from __future__ import annotations

import os
import shlex
import shutil
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from dumont_client import config
from dumont_client.cli import render
from dumont_client.client import Client
from dumont_client.errors import ConfigurationError, DumontError
from dumont_client.models import Instance, Snapshot

EXIT_API_ERROR = 1


class _Group(TyperGroup):
    """Turns every DumontError raised by a command into one line on stderr and exit code 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except DumontError as error:
            typer.echo(render.error_line(error), err=True)
            raise typer.Exit(EXIT_API_ERROR) from None
        except OSError as error:  # the config file or ssh binary
            typer.echo(
                f"error: {error.strerror or error}: {error.filename or ''}".strip(), err=True
            )
            raise typer.Exit(EXIT_API_ERROR) from None


def _typer(**options: Any) -> typer.Typer:
    return typer.Typer(cls=_Group, no_args_is_help=True, pretty_exceptions_enable=False, **options)


app = _typer(help="Dumont Cloud: spot GPUs that keep your work safe.")
snapshot_app = _typer(help="Snapshots of an instance's workspace.")
billing_app = _typer(help="Credit balance and usage.")
spot_app = _typer(help="Spot-market prices, forecasts and risk.")
app.add_typer(snapshot_app, name="snapshot")
app.add_typer(billing_app, name="billing")
app.add_typer(spot_app, name="spot")

JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
InstanceId = Annotated[str, typer.Argument(help="The instance id (see `dumont list`).")]
WaitTimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait before giving up.")
]


@app.callback()
def _options(
    ctx: typer.Context,
    api_url: Annotated[
        str | None,
        typer.Option(help="The API address (default: $DUMONT_API_URL, then `dumont login`)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="An API token (default: $DUMONT_API_KEY, then `dumont login`)."),
    ] = None,
) -> None:
    ctx.obj = {"api_url": api_url, "api_key": api_key}


def _client(ctx: typer.Context) -> Client:
    options = ctx.find_root().obj or {}
    return Client(api_key=options.get("api_key"), base_url=options.get("api_url"))


def _wait_for_instance(client: Client, instance: Instance, status: str, timeout: float) -> Instance:
    """Poll with a spinner that shows the status as it changes."""
    with render.progress_console.status(f"{instance.id}: {instance.status}") as spinner:

        def show(current: Instance) -> None:
            spinner.update(f"{current.id}: {current.status} (waiting for {status})")

        return client.instances.wait_until(
            instance.id, status, timeout=timeout, poll_seconds=1, on_poll=show
        )


def _show_instance(instance: Instance) -> None:
    connection = instance.connection
    render.fields(
        [
            ("id", instance.id),
            ("name", instance.name),
            ("status", instance.status),
            ("reason", instance.status_reason),
            ("gpu", f"{instance.gpu_count} x {instance.gpu}"),
            ("region", instance.region),
            ("price", f"{render.usd(instance.price_per_hour)}/h"),
            ("max price", f"{render.usd(instance.max_price)}/h"),
            ("gpu utilisation", instance.gpu_utilization_percent),
            ("last heartbeat", instance.last_heartbeat_at),
            ("created", instance.created_at),
            ("ssh", connection.ssh_command if connection else None),
            ("jupyter", connection.jupyter_url if connection else None),
            ("dns name", connection.dns_name if connection else None),
        ]
    )


# --- account ----------------------------------------------------------------------------------


@app.command()
def login(
    api_url: Annotated[str | None, typer.Option("--api-url", help="The API address.")] = None,
    token: Annotated[str | None, typer.Option("--token", help="An API token (dmt_...).")] = None,
) -> None:
    """Check an API token and save it (with the API address) for later commands."""
    saved = config.read_config()
    if api_url is None:
        api_url = typer.prompt(
            "API URL",
            default=os.environ.get(config.API_URL_VARIABLE)
            or saved.get("api_url")
            or config.DEFAULT_API_URL,
        )
    if token is None:
        token = typer.prompt("API token", hide_input=True)
    api_url = config.normalize_api_url(api_url)
    with Client(api_key=token.strip(), base_url=api_url) as client:
        me = client.me()
    path = config.write_config(api_url=api_url, api_key=token.strip())
    organisation = me.tenant.get("name", "")
    typer.echo(f"Logged in to {api_url} as {me.email} ({organisation}, {me.role}).")
    typer.echo(f"Saved to {path}")


# --- instances --------------------------------------------------------------------------------


def _ssh_key_ids(client: Client, keys: list[str]) -> list[int]:
    """Key ids from ids or names (`--ssh-key laptop`)."""
    if not keys:
        return []
    by_name: dict[str, int] | None = None
    ids = []
    for key in keys:
        if key.isdigit():
            ids.append(int(key))
            continue
        if by_name is None:
            by_name = {item.name: item.id for item in client.ssh_keys.list()}
        if key not in by_name:
            raise ConfigurationError(f"no SSH key named {key!r}", code="unknown_ssh_key")
        ids.append(by_name[key])
    return ids


@app.command()
def create(
    ctx: typer.Context,
    gpu: Annotated[str, typer.Option(help="GPU model: RTX4090, 'RTX 4090', A100, H100, ...")],
    region: Annotated[
        str | None, typer.Option(help="US-East, US-West, EU-West, Asia-Pacific (any case).")
    ] = None,
    max_price: Annotated[
        float | None,
        typer.Option(help="USD per hour for the whole machine (default: $5 per GPU)."),
    ] = None,
    gpu_count: Annotated[int, typer.Option(help="GPUs in the machine.")] = 1,
    ssh_key: Annotated[
        list[str] | None, typer.Option(help="SSH key id or name; repeat for several.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A name for the instance.")] = None,
    disk_gb: Annotated[int | None, typer.Option(help="Disk size in GB.")] = None,
    image: Annotated[str | None, typer.Option(help="Container image.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the machine is running.")] = False,
    timeout: WaitTimeoutOption = 600,
    as_json: JsonOption = False,
) -> None:
    """Rent a GPU machine."""
    with _client(ctx) as client:
        instance = client.instances.create(
            gpu,
            region=region,
            max_price=max_price,
            gpu_count=gpu_count,
            ssh_key_ids=_ssh_key_ids(client, ssh_key or []) or None,
            name=name,
            disk_gb=disk_gb,
            image=image,
        )
        if not as_json:
            typer.echo(
                f"Created {instance.id} ({instance.gpu_count} x {instance.gpu}, "
                f"{instance.region or 'any region'}): {instance.status}"
            )
        if wait:
            instance = _wait_for_instance(client, instance, "running", timeout)
    if as_json:
        render.print_json(instance)
    elif wait:
        _show_instance(instance)


@app.command("list")
def list_instances(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Your instances."""
    with _client(ctx) as client:
        instances = list(client.instances.list(status=status))
    if as_json:
        render.print_json(instances)
        return
    if not instances:
        typer.echo("No instances.")
        return
    render.table(
        ["ID", "NAME", "GPU", "REGION", "STATUS", "$/H", "CREATED"],
        (
            [
                item.id,
                item.name,
                f"{item.gpu_count} x {item.gpu}",
                item.region,
                item.status,
                item.price_per_hour,
                item.created_at,
            ]
            for item in instances
        ),
    )


@app.command()
def show(ctx: typer.Context, instance_id: InstanceId, as_json: JsonOption = False) -> None:
    """One instance, with how to connect to it."""
    with _client(ctx) as client:
        instance = client.instances.get(instance_id)
    if as_json:
        render.print_json(instance)
    else:
        _show_instance(instance)


@app.command()
def hibernate(
    ctx: typer.Context,
    instance_id: InstanceId,
    wait: Annotated[bool, typer.Option(help="Wait until it is hibernated.")] = False,
    timeout: WaitTimeoutOption = 600,
) -> None:
    """Stop the GPU and its bill; the workspace is kept (a final sync)."""
    with _client(ctx) as client:
        instance = client.instances.hibernate(instance_id)
        if wait:
            instance = _wait_for_instance(client, instance, "hibernated", timeout)
    typer.echo(f"{instance.id}: {instance.status}")


@app.command()
def wake(
    ctx: typer.Context,
    instance_id: InstanceId,
    wait: Annotated[bool, typer.Option(help="Wait until it is running.")] = False,
    timeout: WaitTimeoutOption = 600,
) -> None:
    """Start a hibernated instance again."""
    with _client(ctx) as client:
        instance = client.instances.wake(instance_id)
        if wait:
            instance = _wait_for_instance(client, instance, "running", timeout)
    typer.echo(f"{instance.id}: {instance.status}")


@app.command()
def delete(
    ctx: typer.Context,
    instance_id: InstanceId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until it is deleted.")] = False,
    timeout: WaitTimeoutOption = 600,
) -> None:
    """Destroy an instance and its disk."""
    with _client(ctx) as client:
        if not yes:
            instance = client.instances.get(instance_id)
            typer.confirm(
                f"Delete {instance.id} ({instance.name}, {instance.gpu_count} x {instance.gpu}) "
                "and its disk?",
                abort=True,
            )
        instance = client.instances.delete(instance_id)
        if wait:
            instance = _wait_for_instance(client, instance, "deleted", timeout)
    typer.echo(f"{instance.id}: {instance.status}")


@app.command()
def events(ctx: typer.Context, instance_id: InstanceId, as_json: JsonOption = False) -> None:
    """Every status change of an instance, oldest first."""
    with _client(ctx) as client:
        history = list(client.instances.events(instance_id))
    if as_json:
        render.print_json(history)
        return
    render.table(
        ["AT", "FROM", "TO", "REASON", "ACTOR"],
        (
            [event.created_at, event.from_status, event.to_status, event.reason, event.actor]
            for event in history
        ),
    )


@app.command()
def ssh(
    ctx: typer.Context,
    instance_id: InstanceId,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="Arguments for ssh, after --: `dumont ssh ID -- -L 8888:localhost:8888`."
        ),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the ssh command instead of running it.")
    ] = False,
) -> None:
    """Open a shell on the instance with its SSH command."""
    with _client(ctx) as client:
        instance = client.instances.get(instance_id)
    ssh_command = instance.connection.ssh_command if instance.connection else None
    if not ssh_command:
        raise DumontError(
            f"{instance.id} has no SSH address yet (status {instance.status})", code="no_ssh"
        )
    arguments = [*shlex.split(ssh_command), *(command or [])]
    if print_only:
        typer.echo(shlex.join(arguments))
        return
    executable = shutil.which(arguments[0])
    if executable is None:
        raise DumontError("no `ssh` program on this machine's PATH", code="ssh_not_found")
    os.execv(executable, arguments)  # replaces this process: the terminal is ssh's


# --- snapshots --------------------------------------------------------------------------------


def _wait_for_snapshot(client: Client, snapshot: Snapshot, timeout: float) -> Snapshot:
    """A progress bar fed by the snapshot's `progress_percent` (a spinner when it has none)."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=render.progress_console, transient=True) as progress:
        task = progress.add_task(f"snapshot {snapshot.id}", total=100)

        def show(current: Snapshot) -> None:
            description = f"snapshot {current.id}: {current.status}"
            if current.progress_percent is not None:
                progress.update(task, completed=current.progress_percent, description=description)
            else:
                progress.update(task, description=description)

        done = client.snapshots.wait_until(snapshot.id, timeout=timeout, on_poll=show)
        progress.update(task, completed=100)
    return done


@snapshot_app.command("create")
def snapshot_create(
    ctx: typer.Context,
    instance_id: InstanceId,
    name: Annotated[str | None, typer.Option(help="A name for the snapshot.")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until it completes.")] = True,
    timeout: WaitTimeoutOption = 1800,
) -> None:
    """Snapshot an instance's workspace."""
    with _client(ctx) as client:
        snapshot = client.snapshots.create(instance_id, name=name)
        typer.echo(f"Snapshot {snapshot.id} of {instance_id}: {snapshot.status}")
        if wait:
            snapshot = _wait_for_snapshot(client, snapshot, timeout)
            typer.echo(f"Snapshot {snapshot.id}: {snapshot.status}")


@snapshot_app.command("list")
def snapshot_list(
    ctx: typer.Context,
    instance: Annotated[str | None, typer.Option(help="Only this instance's.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Your snapshots."""
    with _client(ctx) as client:
        snapshots = list(client.snapshots.list(instance_id=instance))
    if as_json:
        render.print_json(snapshots)
        return
    render.table(
        ["ID", "INSTANCE", "NAME", "STATUS", "SIZE (BYTES)", "CREATED"],
        (
            [item.id, item.instance_id, item.name, item.status, item.size_bytes, item.created_at]
            for item in snapshots
        ),
    )


@snapshot_app.command("restore")
def snapshot_restore(
    ctx: typer.Context,
    snapshot_id: Annotated[str, typer.Argument(help="The snapshot id.")],
    gpu: Annotated[str | None, typer.Option(help="GPU of the new instance.")] = None,
    region: Annotated[str | None, typer.Option(help="Region of the new instance.")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the new instance runs.")] = False,
    timeout: WaitTimeoutOption = 1800,
) -> None:
    """A new instance from a snapshot, on any GPU and region."""
    with _client(ctx) as client:
        instance = client.snapshots.restore(snapshot_id, gpu=gpu, region=region)
        typer.echo(f"Restoring {snapshot_id} into {instance.id}: {instance.status}")
        if wait:
            instance = _wait_for_instance(client, instance, "running", timeout)
            typer.echo(f"{instance.id}: {instance.status}")


# --- billing ----------------------------------------------------------------------------------


@billing_app.command("balance")
def billing_balance(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Your credit."""
    with _client(ctx) as client:
        balance = client.billing.balance()
    if as_json:
        render.print_json(balance)
    else:
        typer.echo(f"Balance: ${balance.balance_usd} {balance.currency}")


@billing_app.command("usage")
def billing_usage(
    ctx: typer.Context,
    instance: Annotated[str | None, typer.Option(help="Only this instance.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Usage charged per instance and day (UTC)."""
    with _client(ctx) as client:
        days = client.billing.usage(instance_id=instance)
    if as_json:
        render.print_json(days)
        return
    if not days:
        typer.echo("No usage yet.")
        return
    render.table(
        ["DAY", "INSTANCE", "KIND", "USD"],
        ([day.day, day.subject_id, day.kind, day.amount_usd] for day in days),
    )


# --- spot market ------------------------------------------------------------------------------


@spot_app.command("monitor")
def spot_monitor(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(help="Only this region.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Live prices of every tracked GPU against their last 24 hours."""
    with _client(ctx) as client:
        answer = client.spot.monitor(region=region)
    if as_json:
        render.print_json(answer)
        return
    render.table(
        ["GPU", "NOW $/H", "AVG 24H", "MIN 24H", "MAX 24H", "TREND", "CHANGE %"],
        (
            [
                row.get("gpu_name"),
                row.get("current_price"),
                row.get("avg_price_24h"),
                row.get("min_price_24h"),
                row.get("max_price_24h"),
                row.get("trend"),
                row.get("change_percent"),
            ]
            for row in answer.get("price_trends", [])
        ),
        title=f"Spot prices at {answer.get('timestamp', '')}",
    )


@spot_app.command("predict")
def spot_predict(
    ctx: typer.Context,
    gpu: Annotated[str, typer.Argument(help="GPU model, e.g. A100 or 'RTX 4090'.")],
    as_json: JsonOption = False,
) -> None:
    """Price forecast for the next 1, 6 and 24 hours."""
    with _client(ctx) as client:
        answer = client.spot.prediction(gpu)
    if as_json:
        render.print_json(answer)
        return
    render.table(
        ["HORIZON", "PRICE $/H", "CONFIDENCE"],
        (
            [horizon.removeprefix("next_"), value.get("price"), value.get("confidence")]
            for horizon, value in (answer.get("predictions") or {}).items()
        ),
        title=f"{answer.get('gpu_name')}: now ${answer.get('current_price')}/h",
    )
    typer.echo(answer.get("recommendation", ""))


@spot_app.command("safe-windows")
def spot_safe_windows(
    ctx: typer.Context,
    gpu: Annotated[str, typer.Argument(help="GPU model, e.g. A100 or 'RTX 4090'.")],
    as_json: JsonOption = False,
) -> None:
    """The week's 6-hour windows with the least interruption risk (UTC)."""
    with _client(ctx) as client:
        answer = client.spot.safe_windows(gpu)
    if as_json:
        render.print_json(answer)
        return
    render.table(
        ["DAY", "HOURS (UTC)", "SAFETY", "AVG $/H", "WHY"],
        (
            [
                window.get("day_of_week"),
                f"{window.get('start_hour'):02d}-{window.get('end_hour'):02d}",
                window.get("safety_score"),
                window.get("avg_price"),
                window.get("reasoning"),
            ]
            for window in answer.get("safe_windows", [])
        ),
        title=f"Safest windows for {answer.get('gpu_name')}",
    )


@spot_app.command("savings")
def spot_savings(
    ctx: typer.Context,
    gpu: Annotated[str, typer.Option(help="GPU model.")] = "RTX 4090",
    hours: Annotated[float, typer.Option(help="Hours of use.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """What the same hours cost here, on AWS and on GCP."""
    with _client(ctx) as client:
        answer = client.spot.savings(gpu, hours)
    if as_json:
        render.print_json(answer)
        return
    render.fields(
        [
            ("gpu", answer.get("gpu_name")),
            ("hours", answer.get("hours")),
            ("Dumont", render.cost(answer.get("cost_dumont"))),
            ("AWS", render.cost(answer.get("cost_aws"))),
            ("GCP", render.cost(answer.get("cost_gcp"))),
            ("saved vs AWS", render.cost(answer.get("savings_vs_aws"))),
            ("saved %", answer.get("savings_percent")),
        ]
    )


# --- advisor ----------------------------------------------------------------------------------


@app.command()
def advisor(
    ctx: typer.Context,
    workload: Annotated[str, typer.Option(help="training, fine-tuning, inference, rendering...")],
    model_size: Annotated[
        float | None, typer.Option(help="Model size in billions of parameters.")
    ] = None,
    budget: Annotated[float | None, typer.Option(help="Budget in USD.")] = None,
    deadline: Annotated[float | None, typer.Option(help="Hours until it must be done.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Which GPU and region to rent for a workload."""
    with _client(ctx) as client:
        advice = client.advisor.recommend(
            workload, model_size_b=model_size, budget_usd=budget, deadline_hours=deadline
        )
    if as_json:
        render.print_json(advice)
        return
    render.fields(
        [
            ("gpu", advice.gpu),
            ("region", advice.region),
            ("estimated cost", render.cost(advice.estimated_cost_usd)),
            ("estimated hours", advice.estimated_hours),
            ("why", advice.reasoning),
            ("source", advice.source),
        ]
    )
