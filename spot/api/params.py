"""Query parameters of the spot endpoints: validated, so bad input is a 400 with a code."""

from rest_framework import serializers

from spot.catalog import REGIONS, find_any_gpu
from spot.compute import BYTES_PER_PARAMETER, dataset_tokens, parameters_billions


class GpuField(serializers.CharField):
    default_error_messages = {"unknown_gpu": "Unknown GPU {value!r}."}

    def to_internal_value(self, data):
        gpu = find_any_gpu(super().to_internal_value(data))
        if gpu is None:
            self.fail("unknown_gpu", value=data)
        return gpu


class MonitorParams(serializers.Serializer):
    region = serializers.ChoiceField(choices=REGIONS, required=False)


class LlmParams(serializers.Serializer):
    model_size = serializers.CharField(default="7B")
    min_vram = serializers.IntegerField(min_value=1, max_value=2000, required=False)
    max_price = serializers.FloatField(min_value=0.001, required=False)
    mode = serializers.ChoiceField(choices=list(BYTES_PER_PARAMETER), default="lora")
    tokens = serializers.FloatField(min_value=1e6, max_value=1e13, default=1e8)

    def validate_model_size(self, value: str) -> float:
        parameters = parameters_billions(value)
        if parameters is None or not 0.05 <= parameters <= 2000:
            raise serializers.ValidationError(
                "Give a size like 7B, 13B, 70B.", code="invalid_model_size"
            )
        return parameters


class FleetParams(serializers.Serializer):
    workload = serializers.ChoiceField(choices=["training", "inference", "rendering"])
    budget = serializers.FloatField(min_value=1, max_value=10_000_000)
    reliability = serializers.ChoiceField(choices=["low", "medium", "high"], default="medium")
    hours_per_gpu = serializers.IntegerField(min_value=1, max_value=744, default=160)


class GpuParams(serializers.Serializer):
    gpu = GpuField()


class OptionalGpuParams(serializers.Serializer):
    gpu = GpuField(required=False)


class TrainingCostParams(serializers.Serializer):
    model = serializers.CharField(max_length=100)
    dataset_size = serializers.CharField(max_length=20)
    epochs = serializers.FloatField(min_value=0.01, max_value=1000, default=1)
    mode = serializers.ChoiceField(choices=["lora", "full"], default="full")

    def validate_model(self, value: str) -> tuple[str, float]:
        parameters = parameters_billions(value)
        if parameters is None:
            raise serializers.ValidationError(
                "Name the size in the model, e.g. llama2-7b.", code="invalid_model"
            )
        return value, parameters

    def validate_dataset_size(self, value: str) -> float:
        tokens = dataset_tokens(value)
        if tokens is None or tokens <= 0:
            raise serializers.ValidationError(
                "Give a size like 50GB or 500MB.", code="invalid_dataset_size"
            )
        return tokens


class SavingsParams(serializers.Serializer):
    gpu = GpuField()
    hours = serializers.FloatField(min_value=0.1, max_value=1_000_000)


class PeriodParams(serializers.Serializer):
    period = serializers.RegexField(r"^\d{1,3}d$", default="7d")

    def validate_period(self, value: str) -> int:
        days = int(value[:-1])
        if not 1 <= days <= 365:
            raise serializers.ValidationError("1d to 365d.", code="invalid_period")
        return days
