"""The 10 spot-market endpoints of ../shared/seeds/spot-market-intelligence.md, from data.

Every number comes from market samples and rollups (spot/history.py), the GPU catalog and cloud
catalogs (spot/catalog.py, spot/clouds.py), the compute model (spot/compute.py), the backtested
forecast (spot/forecast.py) and interruption statistics (spot/risk.py). Where the data has no
answer (Azure prices, network latency) the field is null and a note says why.
"""

import math
from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from dumont.exceptions import DumontError
from spot import clouds, compute, forecast, prices, risk, windows
from spot.api import params
from spot.catalog import Gpu, find_any_gpu, gpus
from spot.options import job_options

DAY = timedelta(hours=24)
TREND_THRESHOLD_PERCENT = 2.0
HOURS_PER_YEAR = 8760


class NoMarketData(DumontError):
    code = "no_market_data"
    status_code = 404


def _parsed(serializer_class, request) -> dict:
    form = serializer_class(data=request.query_params)
    form.is_valid(raise_exception=True)
    return form.validated_data


def _gpu_in_path(name: str) -> Gpu:
    gpu = find_any_gpu(name)
    if gpu is None:
        raise params.serializers.ValidationError(
            {"gpu_name": [f"Unknown GPU {name!r}."]}, code="unknown_gpu"
        )
    return gpu


def _current_or_404(gpu: Gpu, now) -> int:
    micros = prices.current_micros(gpu.name, now)
    if micros is None:
        raise NoMarketData(f"No market data for {gpu.name} yet.")
    return micros


def _spot_doc(summary: str, query=None):
    return extend_schema(
        summary=summary,
        parameters=query or [],
        responses={200: OpenApiTypes.OBJECT},
        tags=["spot"],
    )


def _query(*names: str) -> list[OpenApiParameter]:
    return [OpenApiParameter(name, str) for name in names]


class MonitorView(APIView):
    """Current price of every tracked GPU against its last 24 hours."""

    @_spot_doc("Live prices and 24 h trends", _query("region"))
    def get(self, request):
        _parsed(params.MonitorParams, request)
        now = timezone.now()
        live = prices.live_by_gpu(now)
        trends = []
        for gpu_name, day in sorted(prices.windows(now - DAY, now).items()):
            # Live offers, else the newest hour of history (prices.current_micros, batched).
            current = min((row.min_micros for row in live.get(gpu_name, [])), default=None)
            current = current if current is not None else day.end_micros
            change = (current - day.start_micros) / day.start_micros * 100
            versus_average = (current - day.average_micros) / day.average_micros * 100
            trend = (
                "increasing"
                if versus_average > TREND_THRESHOLD_PERCENT
                else "decreasing"
                if versus_average < -TREND_THRESHOLD_PERCENT
                else "stable"
            )
            trends.append(
                {
                    "gpu_name": gpu_name,
                    "current_price": prices.usd(current),
                    "avg_price_24h": prices.usd(day.average_micros),
                    "min_price_24h": prices.usd(day.min_micros),
                    "max_price_24h": prices.usd(day.max_micros),
                    "trend": trend,
                    "change_percent": round(change, 1),
                }
            )
        return Response(
            {
                "timestamp": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
                "total_gpus_tracked": len(trends),
                "price_trends": trends,
            }
        )


class LlmGpusView(APIView):
    """GPUs that hold an LLM of a given size, ranked by cost per unit of speed."""

    @_spot_doc(
        "GPUs for an LLM (compute model in spot/compute.py)",
        _query("model_size", "min_vram", "max_price", "mode", "tokens"),
    )
    def get(self, request):
        query = _parsed(params.LlmParams, request)
        candidates = [
            option
            for option in job_options(
                query["model_size"], query["mode"], query["tokens"], timezone.now()
            )
            if option.gpu.vram_gb >= query.get("min_vram", 0)
            and option.hourly_usd <= query.get("max_price", math.inf)
        ]
        if not candidates:
            return Response(
                {"model_size": request.query_params.get("model_size", "7B"), "recommendations": []}
            )
        cheapest_job = candidates[0].cost_usd
        recommendations = []
        for option in candidates[:5]:
            gpu, cost = option.gpu, option.cost_usd
            fit_score = round(0.8 * cheapest_job / cost + 0.2 * max(0.0, option.headroom), 2)
            reasoning = (
                f"{option.memory_gb:.0f} GB needed, {gpu.vram_gb * option.gpu_count} GB on "
                f"{option.gpu_count}x {gpu.name}; the job costs ${cost:.2f} "
                f"({cost / cheapest_job:.2f}x the cheapest option)"
            )
            recommendations.append(
                {
                    "gpu_name": gpu.name,
                    "vram_gb": gpu.vram_gb,
                    "gpu_count": option.gpu_count,
                    "price_per_hour": round(option.hourly_usd, 4),
                    "fit_score": min(1.0, fit_score),
                    "reasoning": reasoning,
                    "estimated_training_time_hours": round(option.hours, 1),
                    "estimated_cost": round(cost, 2),
                }
            )
        return Response(
            {
                "model_size": request.query_params.get("model_size", "7B"),
                "parameters_billions": query["model_size"],
                "mode": query["mode"],
                "tokens": query["tokens"],
                "memory_gb": round(compute.memory_gb(query["model_size"], query["mode"]), 1),
                "recommendations": recommendations,
            }
        )


# What each workload values: primary GPUs by price per TFLOPS, with a reliable pool on top.
RELIABLE_SHARE = {"low": 0.0, "medium": 0.25, "high": 0.5}


class FleetStrategyView(APIView):
    """A fleet for a monthly budget: cheap spot GPUs plus a reliable datacenter pool."""

    @_spot_doc(
        "Fleet composition for a budget",
        _query("workload", "budget", "reliability", "hours_per_gpu"),
    )
    def get(self, request):
        query = _parsed(params.FleetParams, request)
        now = timezone.now()
        priced = []
        for gpu in gpus():
            price = prices.current_micros(gpu.name, now)
            if price is not None:
                priced.append((gpu, price / 1_000_000))
        if not priced:
            raise NoMarketData("No live market data yet.")
        hours = query["hours_per_gpu"]
        memory_floor = 16 if query["workload"] == "inference" else 24
        usable = [(gpu, price) for gpu, price in priced if gpu.vram_gb >= memory_floor] or priced
        primary = min(usable, key=lambda item: item[1] / item[0].fp16_tflops)
        reliable_pool = [(gpu, price) for gpu, price in priced if gpu.vram_gb >= 80]
        reliable = min(
            reliable_pool, key=lambda item: risk.prior_hazard_per_hour(item[0].name), default=None
        )
        budget = query["budget"]
        share = RELIABLE_SHARE[query["reliability"]] if reliable else 0.0
        composition = []
        reliable_count = int(budget * share // (reliable[1] * hours)) if reliable else 0
        if reliable_count:
            composition.append(("high_priority", reliable, reliable_count))
        left = budget - reliable_count * (reliable[1] * hours if reliable else 0)
        primary_count = int(left // (primary[1] * hours))
        if primary_count:
            composition.insert(0, ("primary", primary, primary_count))
        monthly = sum(count * price * hours for _, (_, price), count in composition)
        aws = 0.0
        for _, (gpu, _), count in composition:
            equivalent = clouds.equivalent("aws", gpu)
            if equivalent:
                # The same work on AWS's comparable GPU, scaled by the speed difference.
                speed = gpu.fp16_tflops / equivalent.gpu.fp16_tflops
                aws += count * hours * speed * equivalent.usd_per_gpu_hour
        savings = aws - monthly
        strategy = "spot_only" if len(composition) == 1 and not reliable_count else "hybrid"
        return Response(
            {
                "strategy": strategy,
                "total_gpus": sum(count for *_, count in composition),
                "monthly_cost": round(monthly, 2),
                "composition": [
                    {
                        "gpu_type": gpu.name,
                        "quantity": count,
                        "role": role,
                        "cost_per_month": round(count * price * hours, 2),
                        "price_per_hour": round(price, 4),
                    }
                    for role, (gpu, price), count in composition
                ],
                "savings_vs_aws": round(savings, 2),
                "roi_percent": round(savings / monthly * 100) if monthly else 0,
                "hours_per_gpu": hours,
            }
        )


class PredictionView(APIView):
    """Forecasts 1 h, 6 h and 24 h ahead with backtested confidence (spot/forecast.py)."""

    @_spot_doc("Price forecast for one GPU")
    def get(self, request, gpu_name: str):
        gpu = _gpu_in_path(gpu_name)
        now = timezone.now()
        current = _current_or_404(gpu, now)
        series = forecast.hourly(prices.hourly_points(gpu.name, now - 30 * DAY, now + DAY))
        prediction = forecast.predict(series)
        if prediction is None:
            raise NoMarketData(f"Not enough price history for {gpu.name} to forecast (3 days).")
        current_usd = prices.usd(current)
        predictions = {
            f"next_{horizon}": {"price": round(price, 4), "confidence": confidence}
            for horizon, (price, confidence) in prediction.forecasts.items()
        }
        best = min(prediction.forecasts.items(), key=lambda item: item[1][0])
        if best[1][0] < current_usd * 0.98:
            recommendation = f"Wait about {best[0]} for a lower price (${best[1][0]:.2f}/h)"
        else:
            recommendation = "Rent now: no lower price is predicted in the next 24 hours"
        return Response(
            {
                "gpu_name": gpu.name,
                "current_price": current_usd,
                "predictions": predictions,
                "recommendation": recommendation,
                "model_accuracy": prediction.model_accuracy,
                "model": prediction.model,
                "observations_hours": prediction.observations,
            }
        )


class AvailabilityView(APIView):
    """Machines available now per region, from the latest monitor samples."""

    @_spot_doc("Availability per region", _query("gpu"))
    def get(self, request):
        gpu = _parsed(params.GpuParams, request)["gpu"]
        regions = prices.latest_by_region(gpu.name, timezone.now())
        with_stock = [region for region in regions if region.available > 0]
        best = min(with_stock, key=lambda region: region.median_micros, default=None)
        return Response(
            {
                "gpu_name": gpu.name,
                "total_available": sum(region.available for region in regions),
                "regions": [
                    {
                        "region": region.region,
                        "available_count": region.available,
                        "avg_price": prices.usd(region.median_micros),
                        "min_price": prices.usd(region.min_micros),
                        "latency_ms": None,
                    }
                    for region in regions
                ],
                "best_region": best.region if best else None,
                "latency_note": "not measured: no probe from your location to the regions",
            }
        )


class TrainingCostView(APIView):
    """What training a model costs on each GPU here and on AWS (6·N·D FLOPs at 35 % MFU)."""

    @_spot_doc("Training cost", _query("model", "dataset_size", "epochs", "mode"))
    def get(self, request):
        query = _parsed(params.TrainingCostParams, request)
        model_name, parameters = query["model"]
        tokens = query["dataset_size"] * query["epochs"]
        rows = []
        for option in job_options(parameters, query["mode"], tokens, timezone.now()):
            gpu = option.gpu
            cost = option.cost_usd
            row = {
                "gpu_name": gpu.name,
                "gpu_count": option.gpu_count,
                "estimated_hours": round(option.hours, 1),
                "cost_dumont": round(cost, 2),
                "cost_aws": None,
                "savings": None,
                "savings_percent": None,
            }
            aws = clouds.equivalent("aws", gpu)
            if aws:
                aws_fit = compute.fit(aws.gpu, parameters, query["mode"])
                if aws_fit:
                    aws_hours = compute.training_hours(
                        parameters, tokens, aws.gpu, aws_fit.gpu_count
                    )
                    cost_aws = aws_hours * aws_fit.gpu_count * aws.usd_per_gpu_hour
                    row.update(
                        cost_aws=round(cost_aws, 2),
                        savings=round(cost_aws - cost, 2),
                        savings_percent=round((cost_aws - cost) / cost_aws * 100, 1),
                        aws_gpu=aws.accelerator,
                    )
            rows.append(row)
        rows.sort(key=lambda row: row["cost_dumont"])
        return Response(
            {
                "model": model_name,
                "parameters_billions": parameters,
                "dataset_size_gb": round(query["dataset_size"] * compute.BYTES_PER_TOKEN / 1e9, 3),
                "tokens": tokens,
                "mfu": compute.MFU,
                "gpu_recommendations": rows[:8],
            }
        )


class SavingsView(APIView):
    """Our live price against AWS and GCP on-demand for the same hours."""

    @_spot_doc("Savings calculator", _query("gpu", "hours"))
    def get(self, request):
        query = _parsed(params.SavingsParams, request)
        gpu, hours = query["gpu"], query["hours"]
        current = _current_or_404(gpu, timezone.now())
        body = {"gpu_name": gpu.name, "hours": hours, **clouds.savings(gpu, hours, current)}
        body["note"] = (
            "roi_annual: the same hours every month for a year; Azure is not in the "
            "reference data; GCP prices are the GPU attachment without its host VM"
        )
        return Response(body)


def _risk_level(score: float) -> str:
    return "low" if score >= 0.9 else "medium" if score >= 0.75 else "high"


class ReliabilityView(APIView):
    """Interruption risk of one GPU over the last 30 days, smoothed toward the AWS prior."""

    @_spot_doc("Reliability score", _query("gpu"))
    def get(self, request):
        gpu = _parsed(params.GpuParams, request)["gpu"]
        now = timezone.now()
        stats = risk.risk(gpu.name, now - 30 * DAY, now)
        score = math.exp(-stats.hazard_per_hour * 24)  # P(no interruption in a day)
        down_hours = (
            stats.hazard_per_hour * 24 * 30 * stats.mean_duration_minutes / 60
            if stats.mean_duration_minutes is not None
            else None
        )
        return Response(
            {
                "gpu_name": gpu.name,
                "reliability_score": round(score, 3),
                "uptime_percent_30d": round(100 * (1 - down_hours / 720), 2)
                if down_hours is not None
                else None,
                "mean_time_between_interruptions_hours": round(1 / stats.hazard_per_hour, 1),
                "avg_interruption_duration_minutes": round(stats.mean_duration_minutes, 1)
                if stats.mean_duration_minutes is not None
                else None,
                "risk_level": _risk_level(score),
                "observed_interruptions": stats.interruptions,
                "observed_machine_hours": stats.machine_hours,
                "prior_interruptions_per_hour": round(stats.prior_hazard_per_hour, 6),
            }
        )


class InterruptionRatesView(APIView):
    """Interruptions per GPU over a period (observed), with the smoothed expectation."""

    @_spot_doc("Interruption rates", _query("period"))
    def get(self, request):
        days = _parsed(params.PeriodParams, request)["period"]
        now = timezone.now()
        since = now - days * DAY
        names = [gpu.name for gpu in gpus()]
        events: dict[str, list] = {name: [] for name in names}
        observed = risk.Interruption.objects.filter(occurred_at__gte=since, gpu__in=names)
        for gpu_name, region, duration in observed.values_list("gpu", "region", "duration_seconds"):
            events[gpu_name].append((region, duration))
        every_risk = risk.risks(names, since, now)
        rows = []
        for name in names:
            durations = [duration for _, duration in events[name] if duration is not None]
            regions: dict[str, int] = {}
            for region, _ in events[name]:
                regions[region] = regions.get(region, 0) + 1
            stats = every_risk[name]
            rows.append(
                {
                    "gpu_name": name,
                    "total_interruptions": len(events[name]),
                    "interruption_rate_per_day": round(len(events[name]) / days, 2),
                    "avg_duration_minutes": round(sum(durations) / len(durations) / 60, 1)
                    if durations
                    else None,
                    "worst_region": max(regions, key=regions.get) if regions else None,
                    "expected_per_machine_day": round(stats.hazard_per_hour * 24, 4),
                    "observed_machine_hours": stats.machine_hours,
                }
            )
        rows.sort(key=lambda row: (-row["total_interruptions"], row["gpu_name"]))
        return Response({"period": f"{days}d", "gpus": rows})


class SafeWindowsView(APIView):
    """6-hour windows of the week ranked by interruption risk and price (spot/windows.py)."""

    @_spot_doc("Safe windows for one GPU")
    def get(self, request, gpu_name: str):
        gpu = _gpu_in_path(gpu_name)
        week = windows.week(gpu.name, timezone.now())
        ordered = windows.ranked(week.windows)
        for window in ordered[:3]:
            window["reasoning"] = _why(window, week.weekly_average_usd, safe=True)
        for window in ordered[-2:]:
            window["reasoning"] = _why(window, week.weekly_average_usd, safe=False)
        return Response(
            {
                "gpu_name": gpu.name,
                "timezone": "UTC",
                "safe_windows": ordered[:3],
                "worst_windows": list(reversed(ordered[-2:])),
                "observed_interruptions": week.risk.interruptions,
                "observed_machine_hours": week.risk.machine_hours,
            }
        )


def _why(window: dict, weekly_average: float | None, *, safe: bool) -> str:
    count = window["interruptions_observed"]
    parts = [f"{count} interruption{'s' if count != 1 else ''} seen in the last 4 weeks"]
    if window["avg_price"] is not None and weekly_average:
        difference = (window["avg_price"] - weekly_average) / weekly_average * 100
        parts.append(f"price {difference:+.1f}% against the weekly average")
    return ("Lower risk: " if safe else "Higher risk: ") + ", ".join(parts)
