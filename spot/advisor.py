"""The AI GPU advisor: a language model picks among options we computed; rules when it can't.

Grounding: the model only ever sees options built from our catalog, the compute model and live
prices (spot/options.py), and it must answer by naming one of them. Its answer is validated
against a schema, and every number we return is recomputed from our data, never taken from the
model. With no API key, a timeout, an HTTP error or an answer that fails validation, the
deterministic rules below answer instead, and the response says which and why.

Rules: the cheapest option that meets both the budget and the deadline; if none does, the
fastest option within budget; if none is within budget, the cheapest option.
"""

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from django.conf import settings
from rest_framework import serializers

from spot import compute
from spot.options import JobOption, job_options

logger = logging.getLogger(__name__)

PROMPT_OPTIONS = 12
ALTERNATIVES = 3
# Inference ("serve", "chat") has no training time: it costs hours of serving.
MODE_WORDS = (
    ("full", r"\b(full[- ]?(fine[- ]?tun\w*|train\w*)|pre[- ]?train\w*|from scratch)"),
    ("lora", r"\b(q?lora|adapter\w*|fine[- ]?tun\w*|finetun\w*|sft)\b"),
    ("full", r"\btrain\w*"),
    ("inference", r"\b(infer\w*|serv\w*|deploy\w*|chat\w*|api|endpoint|generat\w*)\b"),
)
# OpenRouter asks apps to name themselves; other OpenAI-compatible servers ignore these.
APP_HEADERS = {"HTTP-Referer": "https://dumontcloud.com", "X-Title": "Dumont Cloud GPU Advisor"}


class AdvisorUnavailable(Exception):
    """The language model gave no usable answer; `reason` says why (in the response)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True)
class Workload:
    description: str
    parameters_b: float
    mode: str
    tokens: float
    serving_hours: float | None  # inference: hours of serving to price
    budget_usd: float | None
    deadline_hours: float | None
    region: str  # "" = anywhere


@dataclass
class Advice:
    option: JobOption
    reasoning: str
    source: str  # "llm" or "rules"
    workload: Workload
    alternatives: list[JobOption]
    fallback_reason: str | None = None
    model: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def meets_budget(self) -> bool | None:
        return _meets_budget(self.option, self.workload)

    @property
    def meets_deadline(self) -> bool | None:
        return _meets_deadline(self.option, self.workload)


def guess_mode(description: str) -> str:
    """inference, lora or full from the workload's words; lora when they say nothing."""
    text = description.lower()
    for mode, pattern in MODE_WORDS:
        if re.search(pattern, text):
            return mode
    return "lora"


def _meets_budget(option: JobOption, workload: Workload) -> bool | None:
    return None if workload.budget_usd is None else option.cost_usd <= workload.budget_usd


def _meets_deadline(option: JobOption, workload: Workload) -> bool | None:
    if workload.deadline_hours is None:
        return None
    return option.hours <= workload.deadline_hours


def options_for(workload: Workload, now: datetime) -> list[JobOption]:
    return job_options(
        workload.parameters_b,
        workload.mode,
        workload.tokens,
        now,
        region=workload.region,
        hours=workload.serving_hours if workload.mode == "inference" else None,
    )


def rules_choice(options: list[JobOption], workload: Workload) -> tuple[JobOption, str]:
    """The rules of the module docstring; returns the option and why."""
    feasible = [
        option
        for option in options
        if _meets_budget(option, workload) is not False
        and _meets_deadline(option, workload) is not False
    ]
    if feasible:
        return feasible[0], "the cheapest option that meets the budget and the deadline"
    affordable = [option for option in options if _meets_budget(option, workload) is not False]
    if affordable:
        fastest = min(affordable, key=lambda option: option.hours)
        return fastest, "no option meets the deadline; the fastest one within budget"
    return options[0], "no option fits the budget; the cheapest one"


def describe(option: JobOption, workload: Workload) -> str:
    """The arithmetic behind an option's time and cost, in one sentence."""
    where = f" in {option.region}" if option.region else " (history price)"
    if workload.mode == "inference":
        time = f"{option.hours:g} h of serving"
    else:
        time = (
            f"6 x {workload.parameters_b:g}B params x {workload.tokens:.3g} tokens at "
            f"{compute.MFU:.0%} of {option.gpu_count} x {option.gpu.fp16_tflops:g} TFLOPS "
            f"= {option.hours:.1f} h"
        )
    return (
        f"{option.gpu_count}x {option.gpu.name}{where} at ${option.hourly_usd:.3f}/h holds the "
        f"{option.memory_gb:.0f} GB the model needs ({workload.mode}); {time}; "
        f"${option.cost_usd:.2f} in all"
    )


def _rules_advice(options, workload, reason: str | None, notes: list[str]) -> Advice:
    chosen, why = rules_choice(options, workload)
    return Advice(
        option=chosen,
        reasoning=f"Rules: {why}. {describe(chosen, workload)}.",
        source="rules",
        workload=workload,
        alternatives=[option for option in options if option is not chosen][:ALTERNATIVES],
        fallback_reason=reason,
        notes=notes,
    )


def advise(workload: Workload, now: datetime) -> Advice | None:
    """Advice for the workload, or None when no GPU with a price can hold the model."""
    options = options_for(workload, now)
    if not options:
        return None
    if not settings.ADVISOR_API_KEY:
        return _rules_advice(options, workload, "no_api_key", [])
    try:
        chosen, reasoning, notes = _ask_model(options[:PROMPT_OPTIONS], workload)
    except AdvisorUnavailable as error:
        logger.warning("advisor fell back to rules: %s (%s)", error.reason, error)
        return _rules_advice(options, workload, error.reason, [])
    return Advice(
        option=chosen,
        reasoning=reasoning,
        source="llm",
        workload=workload,
        alternatives=[option for option in options if option is not chosen][:ALTERNATIVES],
        model=settings.ADVISOR_MODEL,
        notes=notes,
    )


# --- The language model ------------------------------------------------------------------------


class ModelAnswer(serializers.Serializer):
    """The JSON object the model must return."""

    option_id = serializers.IntegerField(min_value=1)
    gpu = serializers.CharField(max_length=40)
    region = serializers.CharField(max_length=20, allow_null=True, allow_blank=True)
    estimated_cost_usd = serializers.FloatField(min_value=0)
    estimated_hours = serializers.FloatField(min_value=0)
    reasoning = serializers.CharField(max_length=2000)


def _option_rows(options: list[JobOption], workload: Workload) -> list[dict]:
    return [
        {
            "option_id": number,
            "gpu": option.gpu.name,
            "gpu_count": option.gpu_count,
            "vram_gb_each": option.gpu.vram_gb,
            "region": option.region,
            "price_per_hour_usd": round(option.hourly_usd, 4),
            "estimated_hours": round(option.hours, 2),
            "estimated_cost_usd": round(option.cost_usd, 2),
            "meets_budget": _meets_budget(option, workload),
            "meets_deadline": _meets_deadline(option, workload),
        }
        for number, option in enumerate(options, start=1)
    ]


def _messages(options: list[JobOption], workload: Workload) -> list[dict]:
    system = (
        "You are the GPU advisor of Dumont Cloud, a spot GPU cloud. Choose exactly one of the "
        "options given, which were computed from live market prices and a compute model. Weigh "
        "the budget and the deadline first, then cost, then speed. Answer with one JSON object "
        'and nothing else: {"option_id": int, "gpu": str, "region": str|null, '
        '"estimated_cost_usd": number, "estimated_hours": number, "reasoning": str}, copying '
        "gpu, region, cost and hours from the option you chose; reasoning in at most three "
        "sentences for the customer."
    )
    request = {
        "workload": workload.description,
        "model_parameters_billions": workload.parameters_b,
        "mode": workload.mode,
        "training_tokens": workload.tokens if workload.mode != "inference" else None,
        "budget_usd": workload.budget_usd,
        "deadline_hours": workload.deadline_hours,
        "options": _option_rows(options, workload),
    }
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": json.dumps(request)},
    ]


def _content(response: httpx.Response) -> str:
    try:
        return response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise AdvisorUnavailable("invalid_answer", f"not a chat completion: {error}") from error


def _parse(content: str) -> dict:
    # Some models wrap JSON in a Markdown fence even when asked not to.
    text = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", content or "")
    try:
        answer = json.loads(text)
    except ValueError as error:
        raise AdvisorUnavailable("invalid_answer", "the answer is not JSON") from error
    form = ModelAnswer(data=answer if isinstance(answer, dict) else {})
    if not form.is_valid():
        raise AdvisorUnavailable("invalid_answer", f"schema: {dict(form.errors)}")
    return form.validated_data


def _ask_model(options: list[JobOption], workload: Workload) -> tuple[JobOption, str, list[str]]:
    """The model's choice among `options`, its reasoning, and notes on numbers we corrected."""
    try:
        response = httpx.post(
            settings.ADVISOR_API_BASE.rstrip("/") + "/chat/completions",
            headers={"Authorization": f"Bearer {settings.ADVISOR_API_KEY}", **APP_HEADERS},
            json={
                "model": settings.ADVISOR_MODEL,
                "messages": _messages(options, workload),
                "temperature": 0,
                "response_format": {"type": "json_object"},
            },
            timeout=settings.ADVISOR_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException as error:
        raise AdvisorUnavailable("timeout", str(error)) from error
    except httpx.HTTPError as error:
        raise AdvisorUnavailable("upstream_error", str(error)) from error
    if response.status_code != 200:
        raise AdvisorUnavailable("upstream_error", f"HTTP {response.status_code}")
    answer = _parse(_content(response))
    number = answer["option_id"]
    if number > len(options):
        raise AdvisorUnavailable("invalid_answer", f"option {number} was not offered")
    chosen = options[number - 1]
    if answer["gpu"].replace(" ", "").lower() != chosen.gpu.name.replace(" ", "").lower():
        raise AdvisorUnavailable(
            "invalid_answer", f"option {number} is {chosen.gpu.name}, not {answer['gpu']}"
        )
    notes = []
    claimed, actual = answer["estimated_cost_usd"], round(chosen.cost_usd, 2)
    if abs(claimed - actual) > max(0.01, 0.02 * actual):
        notes.append(f"The model quoted ${claimed:.2f}; our data says ${actual:.2f} (used).")
    claimed_hours, hours = answer["estimated_hours"], round(chosen.hours, 2)
    if abs(claimed_hours - hours) > max(0.01, 0.02 * hours):
        notes.append(f"The model quoted {claimed_hours:g} h; our model says {hours:g} h (used).")
    return chosen, answer["reasoning"], notes
