from decimal import Decimal

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.money import micros_to_usd, usd_to_micros
from instances.models import AgentCommand, Failover, Instance, InstanceEvent, Region, Standby
from instances.moves import InstanceRequest


class InstanceCreateSerializer(serializers.Serializer):
    gpu = serializers.CharField(max_length=40, help_text="`RTX 4090`, `rtx4090`, `A100`, ...")
    region = serializers.CharField(
        max_length=20, required=False, allow_blank=True, help_text="Omit for the best offer."
    )
    max_price = serializers.DecimalField(
        max_digits=9,
        decimal_places=6,
        min_value=Decimal("0.000001"),
        max_value=10000,
        coerce_to_string=False,
        required=False,
        help_text="USD per hour for the whole machine; the cheapest offer under it is rented. "
        "Default: DEFAULT_MAX_PRICE_PER_GPU_USD x gpu_count.",
    )
    gpu_count = serializers.IntegerField(min_value=1, max_value=16, default=1)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    ssh_key_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=50
    )
    disk_gb = serializers.IntegerField(min_value=10, max_value=4000, default=50)
    image = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,199}$",
        required=False,
        help_text="Container image, e.g. `pytorch/pytorch:latest`.",
    )

    def validate_max_price(self, value) -> int:
        return usd_to_micros(value)

    def validate(self, data: dict) -> dict:
        if "max_price" not in data:
            default = usd_to_micros(Decimal(str(settings.DEFAULT_MAX_PRICE_PER_GPU_USD)))
            data["max_price"] = default * data.get("gpu_count", 1)
        return data


def instance_request(data: dict, **defaults) -> InstanceRequest:
    """The service's request from InstanceCreateSerializer's validated data."""
    return InstanceRequest(
        gpu=data.get("gpu") or defaults.get("gpu", ""),
        region=data.get("region", defaults.get("region", "")),
        max_price_micros=data["max_price"],
        gpu_count=data["gpu_count"],
        name=data.get("name", ""),
        ssh_key_ids=tuple(data.get("ssh_key_ids", ())),
        disk_gb=data["disk_gb"],
        image=data.get("image") or "pytorch/pytorch:latest",
    )


class ConnectionSerializer(serializers.Serializer):
    ssh_command = serializers.CharField(allow_null=True)
    ssh_host = serializers.CharField(allow_null=True)
    ssh_port = serializers.IntegerField(allow_null=True)
    jupyter_url = serializers.CharField()
    port_url_template = serializers.CharField()
    dns_name = serializers.CharField()
    ip_address = serializers.CharField(allow_null=True)


class StandbySummarySerializer(serializers.Serializer):
    status = serializers.CharField()
    region = serializers.CharField()
    followed_at = serializers.DateTimeField(allow_null=True)


def connection_info(instance: Instance) -> dict:
    """How a person reaches the machine; names follow the machine across restarts and failover."""
    domain = settings.DUMONT_DOMAIN
    host, port = instance.ssh_host, instance.ssh_port
    if instance.is_on_standby:  # failover: the names point at the CPU standby meanwhile
        # Read through .all() so that a list (the portal's dashboard) can prefetch standbys.
        serving = next((s for s in instance.standbys.all() if s.status == "serving"), None)
        if serving is not None:
            host, port = serving.ssh_host, serving.ssh_port
    has_ssh = bool(host and port)
    return {
        "ssh_command": f"ssh -p {port} root@{host}" if has_ssh else None,
        "ssh_host": host or None,
        "ssh_port": port,
        "jupyter_url": f"https://{instance.pk}-8888.{domain}/",
        "port_url_template": f"https://{instance.pk}-{{port}}.{domain}/",
        "dns_name": f"{instance.pk}.{domain}",
        "ip_address": instance.public_ip,
    }


class InstanceSerializer(serializers.ModelSerializer):
    max_price = serializers.SerializerMethodField()
    price_per_hour = serializers.SerializerMethodField()
    ssh_key_ids = serializers.PrimaryKeyRelatedField(source="ssh_keys", many=True, read_only=True)
    connection = serializers.SerializerMethodField()
    region = serializers.SerializerMethodField()
    requested_region = serializers.ChoiceField(
        choices=Region.choices,
        allow_blank=True,
        read_only=True,
        help_text="The region asked for; empty when the best offer anywhere was asked for.",
    )
    standby = serializers.SerializerMethodField()

    class Meta:
        model = Instance
        fields = [
            "id",
            "name",
            "gpu",
            "gpu_count",
            "region",
            "requested_region",
            "max_price",
            "max_price_micros",
            "price_per_hour",
            "price_micros",
            "provider",
            "provider_id",
            "status",
            "status_reason",
            "status_changed_at",
            "disk_gb",
            "image",
            "ssh_key_ids",
            "connection",
            "gpu_utilization_percent",
            "last_heartbeat_at",
            "last_sync_at",
            "sync_lag_seconds",
            "is_on_standby",
            "standby",
            "created_at",
            "running_since",
            "deleted_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField())
    def get_max_price(self, instance: Instance) -> float:
        return float(micros_to_usd(instance.max_price_micros))

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_price_per_hour(self, instance: Instance) -> float | None:
        if instance.price_micros is None:
            return None
        return float(micros_to_usd(instance.price_micros))

    @extend_schema_field(StandbySummarySerializer(allow_null=True))
    def get_standby(self, instance: Instance) -> dict | None:
        # Read through .all(): InstanceViewSet prefetches the current standby of every instance.
        standby = next((s for s in instance.standbys.all() if s.status not in Standby.ENDED), None)
        if standby is None:
            return None
        return {
            "status": standby.status,
            "region": standby.region,
            "followed_at": standby.followed_at,
        }

    def get_region(self, instance: Instance) -> str | None:
        return instance.region or instance.requested_region or None

    @extend_schema_field(ConnectionSerializer)
    def get_connection(self, instance: Instance) -> dict:
        return connection_info(instance)


class InstanceEventSerializer(serializers.ModelSerializer):
    from_status = serializers.ChoiceField(
        choices=Instance.Status.choices,
        allow_blank=True,
        read_only=True,
        help_text="Empty for the instance's first event.",
    )

    class Meta:
        model = InstanceEvent
        fields = ["id", "from_status", "to_status", "reason", "actor", "created_at"]
        read_only_fields = fields


class FailoverSerializer(serializers.ModelSerializer):
    class Meta:
        model = Failover
        fields = [
            "id",
            "status",
            "reason",
            "interrupted_at",
            "last_sync_at",
            "rpo_seconds",
            "standby_serving_at",
            "rto_standby_seconds",
            "gpu_serving_at",
            "rto_gpu_seconds",
            "failed_region",
            "new_region",
        ]
        read_only_fields = fields


class AlternativeSerializer(serializers.Serializer):
    gpu = serializers.CharField()
    region = serializers.CharField()
    gpu_count = serializers.IntegerField()
    price_per_hour = serializers.FloatField()
    available = serializers.IntegerField()
    why = serializers.CharField()


class NoCapacitySerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    alternatives = AlternativeSerializer(many=True)


class CommandResultSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ok = serializers.BooleanField()
    detail = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    result = serializers.DictField(required=False, help_text="What a long command produced.")


class CommandProgressSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    phase = serializers.CharField(max_length=20, required=False)
    bytes_done = serializers.IntegerField(min_value=0)
    bytes_total = serializers.IntegerField(min_value=0)
    files_done = serializers.IntegerField(min_value=0, required=False)
    files_total = serializers.IntegerField(min_value=0, required=False)
    eta_seconds = serializers.FloatField(min_value=0, required=False, allow_null=True)


class SyncReportSerializer(serializers.Serializer):
    snapshot_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    synced_at = serializers.DateTimeField(required=False)
    lag_seconds = serializers.FloatField(min_value=0, required=False, allow_null=True)
    duration_seconds = serializers.FloatField(min_value=0, required=False)
    added_bytes = serializers.IntegerField(min_value=0, required=False)
    error = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class FollowReportSerializer(serializers.Serializer):
    snapshot_id = serializers.CharField(max_length=64)
    restored_at = serializers.DateTimeField(required=False)


class ActivitySerializer(serializers.Serializer):
    """What besides the GPU says the machine is in use (any of them keeps it from idling)."""

    workspace_changed = serializers.BooleanField(
        required=False, help_text="The workspace changed since the agent last looked."
    )
    interactive_sessions = serializers.IntegerField(
        min_value=0, required=False, help_text="Terminals open on the machine (SSH, Jupyter)."
    )
    network_bytes_per_second = serializers.FloatField(
        min_value=0, required=False, help_text="Network traffic, loopback excluded."
    )


class HeartbeatSerializer(serializers.Serializer):
    gpu_utilization_percent = serializers.FloatField(min_value=0, max_value=100)
    gpu_memory_used_mb = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    gpu_count = serializers.IntegerField(min_value=0, required=False)
    source = serializers.CharField(max_length=20, required=False)
    agent_version = serializers.CharField(max_length=40, required=False)
    uptime_seconds = serializers.FloatField(min_value=0, required=False)
    command_results = CommandResultSerializer(many=True, required=False, max_length=100)
    command_progress = CommandProgressSerializer(many=True, required=False, max_length=100)
    sync = SyncReportSerializer(required=False)
    activity = ActivitySerializer(required=False)
    follow = FollowReportSerializer(required=False, help_text="A standby's agent only.")


class AgentCommandSerializer(serializers.ModelSerializer):
    class Meta:
        model = AgentCommand
        fields = ["id", "kind", "args"]


class HeartbeatReplySerializer(serializers.Serializer):
    instance_id = serializers.CharField()
    status = serializers.CharField()
    interval_seconds = serializers.FloatField()
    commands = AgentCommandSerializer(many=True)
