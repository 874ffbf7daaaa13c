"""The market: price history with the forecast band, availability by region, the safe-windows
heatmap and the savings calculator. Every number comes from the spot app's functions that its
API views use (spot/prices.py, forecast.py, windows.py, clouds.py)."""

from datetime import datetime, timedelta

from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import WEEKDAYS, WEEKDAYS_ABBR

from portal.market.forms import DEFAULT_GPU, MarketForm, SavingsForm
from portal.views import PortalPage
from spot import clouds, forecast, prices, windows
from spot.catalog import Gpu

HOUR = timedelta(hours=1)
FORECAST_HISTORY = timedelta(days=30)  # what /api/spot/prediction forecasts from
DEFAULT_SAVINGS_HOURS = 100


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def price_chart(gpu: Gpu, region: str, days: int, now: datetime) -> dict:
    """The chart's data: hourly prices over `days`, and the forecast 1/6/24 h past the last one
    with its 80 % interval (forecast.predict on the same 30 days the prediction endpoint uses)."""
    history = prices.hourly_points(gpu.name, now - timedelta(days=days), now + HOUR, region=region)
    chart = {
        "history": [[_millis(moment), round(price, 4)] for moment, price in history],
        "forecast": [],
    }
    rows: list[dict] = []
    if history:
        recent = prices.hourly_points(gpu.name, now - FORECAST_HISTORY, now + HOUR, region=region)
        rows = _prediction_rows(forecast.predict(forecast.hourly(recent)))
    if rows:
        last_at, last_price = recent[-1]
        chart["forecast"].append([_millis(last_at), last_price, last_price, last_price])
        for row in rows:
            chart["forecast"].append(
                [
                    _millis(last_at + row["hours"] * HOUR),
                    round(row["price"], 4),
                    round(row["low"], 4),
                    round(row["high"], 4),
                ]
            )
    return {"chart": chart, "prediction": rows}


def _prediction_rows(prediction: forecast.Prediction | None) -> list[dict]:
    if prediction is None:
        return []
    rows = []
    for horizon in forecast.HORIZONS:
        price, confidence = prediction.forecasts[horizon]
        low, high = prediction.intervals.get(horizon, (price, price))
        rows.append(
            {
                "horizon": horizon,
                "hours": forecast.HORIZONS[horizon],
                "price": price,
                "confidence_percent": round(confidence * 100),
                "low": max(low, 0.0),  # a price is never below zero, whatever the errors say
                "high": high,
                "has_interval": horizon in prediction.intervals,
            }
        )
    return rows


def availability(gpu: Gpu, now: datetime) -> dict:
    """Machines available now per region, as /api/spot/availability counts them."""
    regions = prices.latest_by_region(gpu.name, now)
    with_stock = [region for region in regions if region.available > 0]
    best = min(with_stock, key=lambda region: region.median_micros, default=None)
    most = max((region.available for region in regions), default=0)
    return {
        "regions": [
            {
                "region": region.region,
                "available": region.available,
                "median_usd": prices.usd(region.median_micros),
                "min_usd": prices.usd(region.min_micros),
                "share_percent": round(region.available * 100 / most) if most else 0,
                "is_best": best is not None and region.region == best.region,
            }
            for region in regions
        ],
        "total": sum(region.available for region in regions),
    }


def heatmap(gpu: Gpu, now: datetime) -> dict:
    """The week's 6-hour windows (spot/windows.py) as rows per day, each cell coloured from red
    (the riskiest window of the week) to green (the safest)."""
    week = windows.week(gpu.name, now)
    scores = [window["safety_score"] for window in week.windows]
    low, high = min(scores), max(scores)
    per_day = 24 // windows.WINDOW_HOURS
    rows = []
    for day in range(7):
        cells = []
        for window in week.windows[day * per_day : (day + 1) * per_day]:
            score = window["safety_score"]
            hue = round(120 * (score - low) / (high - low)) if high > low else 120
            cells.append({**window, "hue": hue, "safety_percent": round(score * 100, 2)})
        rows.append({"day": WEEKDAYS[day], "day_short": WEEKDAYS_ABBR[day], "cells": cells})
    safest = windows.ranked(week.windows)[0]
    return {
        "rows": rows,
        "hours": [
            (start, start + windows.WINDOW_HOURS) for start in range(0, 24, windows.WINDOW_HOURS)
        ],
        "safest": {**safest, "day": WEEKDAYS[windows.DAYS.index(safest["day_of_week"])]},
        "interruptions": week.risk.interruptions,
        "machine_hours": week.risk.machine_hours,
    }


def savings(form: SavingsForm, now: datetime) -> dict:
    """The calculator's answer for a bound form: errors, no market data, or the comparison."""
    if not form.is_valid():
        return {"savings_form": form}
    gpu, hours = form.cleaned_data["gpu"], form.cleaned_data["hours"]
    current = prices.current_micros(gpu.name, now)
    if current is None:
        return {"savings_form": form, "savings_gpu": gpu, "savings_no_data": True}
    return {
        "savings_form": form,
        "savings_gpu": gpu,
        "savings_hours": hours,
        "savings_price": prices.usd(current),
        "savings": clouds.savings(gpu, hours, current),
    }


class MarketPage(PortalPage):
    template_name = "portal/market/market.html"
    nav = "market"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET
        choices = {"gpu": DEFAULT_GPU, "region": "", "days": "7"}
        choices.update({name: query[name] for name in choices if name in query})
        form = MarketForm(choices)
        context["form"] = form
        now = timezone.now()
        if form.is_valid():
            gpu, region = form.cleaned_data["gpu"], form.cleaned_data["region"]
            context.update(
                gpu=gpu,
                region=region,
                current_usd=_usd_or_none(prices.current_micros(gpu.name, now, region=region)),
                availability=availability(gpu, now),
                heatmap=heatmap(gpu, now),
                **price_chart(gpu, region, form.cleaned_data["days"] or 7, now),
            )
        chosen = form.cleaned_data.get("gpu") if form.is_valid() else None
        if "hours" in query:
            savings_form = SavingsForm(query)
        else:
            gpu_name = chosen.name if chosen else DEFAULT_GPU
            savings_form = SavingsForm({"gpu": gpu_name, "hours": DEFAULT_SAVINGS_HOURS})
        context.update(savings(savings_form, now))
        return context


def _usd_or_none(micros: int | None) -> float | None:
    return prices.usd(micros) if micros is not None else None


class SavingsPartial(PortalPage):
    """The calculator's result for htmx; a plain form post (no JavaScript) gets the whole page."""

    template_name = "portal/market/savings.html"
    nav = "market"

    def get(self, request, *args, **kwargs):
        if not request.htmx:
            return redirect(f"{reverse('portal:market')}?{request.GET.urlencode()}#savings")
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(savings(SavingsForm(self.request.GET), timezone.now()))
        return context
