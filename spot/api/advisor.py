"""POST /api/advisor: which GPU, where, for how much and how long, with the reasoning."""

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from dumont.exceptions import DumontError
from dumont.throttling import ScopedRateThrottle
from spot import compute
from spot.advisor import Advice, Workload, advise, describe, guess_mode
from spot.api.alerts import RegionField
from spot.api.views import NoMarketData
from spot.catalog import gpus
from spot.options import JobOption

DEFAULT_TOKENS = 1e8  # what llm-gpus assumes too
DEFAULT_SERVING_HOURS = 24.0


class ModelTooLarge(DumontError):
    code = "model_too_large"
    status_code = 400


class AdvisorRequest(serializers.Serializer):
    workload = serializers.CharField(max_length=2000, help_text="What you want to run, in words.")
    model_size = serializers.CharField(
        max_length=40, required=False, help_text="`7B`, `70b`, `llama2-13b`; else from workload."
    )
    model_size_b = serializers.FloatField(min_value=0.05, max_value=2000, required=False)
    mode = serializers.ChoiceField(
        choices=list(compute.BYTES_PER_PARAMETER), required=False, help_text="Else from workload."
    )
    dataset_size = serializers.CharField(max_length=20, required=False, help_text="`50GB`")
    epochs = serializers.FloatField(min_value=0.01, max_value=1000, default=1)
    serving_hours = serializers.FloatField(min_value=0.1, max_value=8760, required=False)
    budget_usd = serializers.FloatField(min_value=0.01, max_value=10_000_000, required=False)
    deadline_hours = serializers.FloatField(min_value=0.01, max_value=8760, required=False)
    region = RegionField(required=False, allow_blank=True, default="")

    def validate_dataset_size(self, value: str) -> float:
        tokens = compute.dataset_tokens(value)
        if tokens is None or tokens <= 0:
            raise serializers.ValidationError("Give a size like 500MB or 50GB.")
        return tokens

    def validate(self, data: dict) -> dict:
        parameters = data.get("model_size_b")
        for text in (data.get("model_size"), data["workload"]):
            if parameters is None and text:
                parameters = compute.parameters_billions(text)
        if parameters is None or not 0.05 <= parameters <= 2000:
            raise serializers.ValidationError(
                {"model_size": ["Say the model size (7B, 70B) here or in the workload."]},
                code="model_size_required",
            )
        data["parameters_b"] = parameters
        return data


def max_memory_gb() -> float:
    return max(gpu.vram_gb for gpu in gpus()) * compute.MAX_GPUS


def workload_from(data: dict) -> Workload:
    """The advisor's workload from AdvisorRequest's validated data (this API and the portal's
    wizard); ModelTooLarge when no machine we rent holds the model."""
    mode = data.get("mode") or guess_mode(data["workload"])
    tokens = data.get("dataset_size", DEFAULT_TOKENS) * data.get("epochs", 1)
    serving = data.get("serving_hours") or data.get("deadline_hours") or DEFAULT_SERVING_HOURS
    workload = Workload(
        description=data["workload"],
        parameters_b=data["parameters_b"],
        mode=mode,
        tokens=tokens,
        serving_hours=serving if mode == "inference" else None,
        budget_usd=data.get("budget_usd"),
        deadline_hours=data.get("deadline_hours"),
        region=data.get("region", ""),
    )
    if compute.memory_gb(workload.parameters_b, mode) > max_memory_gb():
        raise ModelTooLarge(
            f"{workload.parameters_b:g}B parameters ({mode}) need "
            f"{compute.memory_gb(workload.parameters_b, mode):.0f} GB: more than "
            f"{compute.MAX_GPUS} of our largest GPUs hold."
        )
    return workload


def _option(option: JobOption) -> dict:
    return {
        "gpu": option.gpu.name,
        "gpu_count": option.gpu_count,
        "region": option.region,
        "price_per_hour_usd": round(option.hourly_usd, 4),
        "estimated_hours": round(option.hours, 2),
        "estimated_cost_usd": round(option.cost_usd, 2),
    }


def _body(advice: Advice) -> dict:
    workload = advice.workload
    return {
        **_option(advice.option),
        "vram_gb": advice.option.gpu.vram_gb,
        "meets_budget": advice.meets_budget,
        "meets_deadline": advice.meets_deadline,
        "reasoning": advice.reasoning,
        "arithmetic": describe(advice.option, workload),
        "source": advice.source,
        "fallback_reason": advice.fallback_reason,
        "model": advice.model,
        "notes": advice.notes,
        "inputs": {
            "parameters_billions": workload.parameters_b,
            "mode": workload.mode,
            "memory_gb": round(compute.memory_gb(workload.parameters_b, workload.mode), 1),
            "tokens": workload.tokens if workload.mode != "inference" else None,
            "serving_hours": workload.serving_hours,
            "budget_usd": workload.budget_usd,
            "deadline_hours": workload.deadline_hours,
            "region": workload.region or None,
            "mfu": compute.MFU,
        },
        "alternatives": [_option(option) for option in advice.alternatives],
    }


class AdvisorView(APIView):
    """The AI GPU advisor of the new-instance wizard (spot/advisor.py says how it decides)."""

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "advisor"

    @extend_schema(
        summary="Recommend a GPU, region, cost and time for a workload",
        request=AdvisorRequest,
        responses={200: OpenApiTypes.OBJECT},
        tags=["spot"],
    )
    def post(self, request):
        form = AdvisorRequest(data=request.data)
        form.is_valid(raise_exception=True)
        workload = workload_from(form.validated_data)
        advice = advise(workload, timezone.now())
        if advice is None:
            where = f" in {workload.region}" if workload.region else ""
            raise NoMarketData(f"No GPU that holds this model has a price{where} right now.")
        return Response(_body(advice))
