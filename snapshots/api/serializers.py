from rest_framework import serializers

from instances.api.serializers import InstanceCreateSerializer
from snapshots.models import Restore, Snapshot


class RestoreSerializer(serializers.ModelSerializer):
    progress_percent = serializers.SerializerMethodField()

    class Meta:
        model = Restore
        fields = [
            "id",
            "instance_id",
            "status",
            "bytes_done",
            "bytes_total",
            "progress_percent",
            "error",
            "created_at",
            "completed_at",
        ]
        read_only_fields = fields

    def get_progress_percent(self, row) -> float | None:
        return progress_percent(row)


def progress_percent(row: Snapshot | Restore) -> float | None:
    if row.status == "completed":
        return 100.0
    if not row.bytes_total:
        return None
    return round(min(100.0, row.bytes_done * 100 / row.bytes_total), 1)


class SnapshotSerializer(serializers.ModelSerializer):
    progress_percent = serializers.SerializerMethodField()
    restores = RestoreSerializer(many=True, read_only=True)

    class Meta:
        model = Snapshot
        fields = [
            "id",
            "name",
            "status",
            "instance_id",
            "source_gpu",
            "source_region",
            "progress_percent",
            "bytes_done",
            "bytes_total",
            "files_done",
            "files_total",
            "eta_seconds",
            "size_bytes",
            "added_bytes",
            "error",
            "created_at",
            "started_at",
            "completed_at",
            "restores",
        ]
        read_only_fields = fields

    def get_progress_percent(self, snapshot: Snapshot) -> float | None:
        return progress_percent(snapshot)


class SnapshotCreateSerializer(serializers.Serializer):
    instance_id = serializers.CharField(max_length=16)
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class RestoreRequestSerializer(InstanceCreateSerializer):
    """A new instance for the snapshot: any GPU and region (default: the snapshot's own)."""

    gpu = serializers.CharField(
        max_length=40, required=False, help_text="Default: the GPU the snapshot was taken on."
    )
