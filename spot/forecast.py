"""Price forecasts 1 h / 6 h / 24 h ahead, chosen and judged by a rolling-origin backtest.

GPU rental prices are step-like: they hold for hours, then jump. The no-change forecast is hard
to beat, so the model is picked per series from a few candidates by their error on the first
part of the series, with no-change itself among them (it is replaced only by a candidate that
beat it by CHALLENGER_MARGIN there), and judged on the rest. A median of the last 3 hours was
tried and dropped: it won in training on 5 of the 30 shared series and lost on all of them out
of sample. On the shared series no candidate beats no-change out of sample (BENCHMARKS.md).
- no_change: the last price;
- smooth_a: simple exponential smoothing of the level, alpha = a (damps one-off spikes);
- blend: 0.8 x no-change + 0.2 x the same hour yesterday (a little daily rhythm).
The 80 % interval is the forecast plus the 10th and 90th percentiles of the chosen model's
errors on the training part, per horizon. Definitions used by the API:
- confidence (per horizon): the share of backtest forecasts within 5 % of what happened;
- model_accuracy: 1 - the mean MAPE of the backtest over the three horizons.
"""

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

HORIZONS = {"1h": 1, "6h": 6, "24h": 24}
SEASON_HOURS = 24
MAX_FILL_HOURS = 6  # gaps in the tracker last up to ~5.5 h; longer ones are real holes
TRAIN_SHARE = 0.5
CONFIDENCE_BAND = 0.05
CHALLENGER_MARGIN = 0.2  # another model must beat no-change by 20 % in training

Series = list[float | None]
Forecaster = Callable[[Series, int, int], float | None]


def hourly(points: Sequence[tuple[datetime, float]]) -> Series:
    """The last value in each hour, carried over gaps of up to MAX_FILL_HOURS (else None)."""
    if not points:
        return []
    ordered = sorted(points)
    start = ordered[0][0].replace(minute=0, second=0, microsecond=0)
    hours = int((ordered[-1][0] - start) / timedelta(hours=1)) + 1
    values: Series = [None] * hours
    for moment, value in ordered:
        values[int((moment - start) / timedelta(hours=1))] = value
    last, age = None, 0
    for index, value in enumerate(values):
        if value is not None:
            last, age = value, 0
        else:
            age += 1
            values[index] = last if last is not None and age <= MAX_FILL_HOURS else None
    return values


def _no_change(series: Series, t: int, h: int) -> float | None:
    return series[t]


def _seasonal_naive(series: Series, t: int, h: int) -> float | None:
    back = t + h - SEASON_HOURS * math.ceil(h / SEASON_HOURS)
    return series[back] if back >= 0 else None


def _smoothing(alpha: float) -> Forecaster:
    def forecast(series: Series, t: int, h: int) -> float | None:
        window = [value for value in series[max(0, t - 48) : t + 1] if value is not None]
        if not window or series[t] is None:
            return None
        level = window[0]
        for value in window[1:]:
            level = alpha * value + (1 - alpha) * level
        return level

    return forecast


def _blend(series: Series, t: int, h: int) -> float | None:
    now, season = series[t], _seasonal_naive(series, t, h)
    if now is None:
        return None
    return now if season is None else 0.8 * now + 0.2 * season


CANDIDATES: dict[str, Forecaster] = {
    "no_change": _no_change,
    "smooth_0.5": _smoothing(0.5),
    "smooth_0.8": _smoothing(0.8),
    "blend": _blend,
}


@dataclass
class Errors:
    absolute: list[float] = field(default_factory=list)
    percent: list[float] = field(default_factory=list)
    signed: list[float] = field(default_factory=list)

    def add(self, forecast: float, actual: float) -> None:
        self.absolute.append(abs(actual - forecast))
        self.percent.append(abs(actual - forecast) / actual * 100 if actual else 0.0)
        self.signed.append(actual - forecast)

    def mae(self) -> float:
        return statistics.fmean(self.absolute) if self.absolute else math.nan

    def mape(self) -> float:
        return statistics.fmean(self.percent) if self.percent else math.nan


def _origins(series: Series, first: int, last: int, h: int):
    for t in range(first, last):
        if t + h < len(series) and series[t] is not None and series[t + h] is not None:
            yield t


def errors_of(forecaster: Forecaster, series: Series, first: int, last: int, h: int) -> Errors:
    errors = Errors()
    for t in _origins(series, first, last, h):
        forecast = forecaster(series, t, h)
        if forecast is not None:
            errors.add(forecast, series[t + h])
    return errors


def choose_model(series: Series, split: int) -> str:
    """The candidate with the lowest mean MAPE on the training part, but no-change unless
    another beats it there by CHALLENGER_MARGIN: on step-like prices a small in-sample edge
    is noise, and measured on the shared series it did not survive out of sample."""

    def score(name: str) -> float:
        mapes = [errors_of(CANDIDATES[name], series, 0, split, h).mape() for h in HORIZONS.values()]
        mapes = [value for value in mapes if not math.isnan(value)]
        return statistics.fmean(mapes) if mapes else math.inf

    scores = {name: score(name) for name in CANDIDATES}
    best = min(scores, key=scores.get)
    if scores[best] < scores["no_change"] * (1 - CHALLENGER_MARGIN):
        return best
    return "no_change"


def quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def interval_offsets(
    forecaster: Forecaster, series: Series, split: int, h: int
) -> tuple[float, float] | None:
    """The 80 % interval around a forecast h hours ahead, as offsets: the 10th and 90th
    percentiles of the forecaster's signed errors on the training part (None without any)."""
    errors = errors_of(forecaster, series, 0, split, h).signed
    return (quantile(errors, 0.1), quantile(errors, 0.9)) if errors else None


@dataclass
class HorizonResult:
    model: Errors = field(default_factory=Errors)
    no_change: Errors = field(default_factory=Errors)
    seasonal_naive: Errors = field(default_factory=Errors)
    inside_80: int = 0
    intervals: int = 0
    within_band: int = 0


def backtest(all_series: Sequence[Series]) -> dict[str, HorizonResult]:
    """Rolling-origin backtest over several series (each split into train and test)."""
    results = {name: HorizonResult() for name in HORIZONS}
    for series in all_series:
        if sum(value is not None for value in series) < 3 * SEASON_HOURS:
            continue  # too short to train and test
        split = int(len(series) * TRAIN_SHARE)
        model = CANDIDATES[choose_model(series, split)]
        for name, h in HORIZONS.items():
            result = results[name]
            low, high = interval_offsets(model, series, split, h) or (0.0, 0.0)
            for t in _origins(series, split, len(series), h):
                actual = series[t + h]
                forecast = model(series, t, h)
                naive = _no_change(series, t, h)
                seasonal = _seasonal_naive(series, t, h)
                if forecast is None or seasonal is None:
                    continue  # compare the three on the same origins
                result.model.add(forecast, actual)
                result.no_change.add(naive, actual)
                result.seasonal_naive.add(seasonal, actual)
                result.intervals += 1
                result.inside_80 += forecast + low <= actual <= forecast + high
                result.within_band += abs(actual - forecast) <= CONFIDENCE_BAND * actual
    return results


def report(results: dict[str, HorizonResult]) -> dict:
    """The backtest as the JSON of `spot_backtest --json`."""

    def errors(item: Errors) -> dict:
        return {"mae": round(item.mae(), 6), "mape": round(item.mape(), 4)}

    return {
        name: {
            "model": errors(result.model),
            "no_change": errors(result.no_change),
            "seasonal_naive": errors(result.seasonal_naive),
            "coverage_80": (
                round(result.inside_80 / result.intervals, 4) if result.intervals else None
            ),
        }
        for name, result in results.items()
    }


@dataclass(frozen=True)
class Prediction:
    current: float
    model: str
    forecasts: dict[str, tuple[float, float]]  # horizon → (price, confidence)
    model_accuracy: float
    observations: int
    # horizon → (low, high): the 80 % interval, the forecast plus the 10th and 90th
    # percentiles of the chosen model's errors on the training part
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


def predict(series: Series) -> Prediction | None:
    """Forecast the end of `series`, with confidence and accuracy from its own backtest."""
    known = [value for value in series if value is not None]
    if len(known) < 3 * SEASON_HOURS or series[-1] is None:
        return None
    split = int(len(series) * TRAIN_SHARE)
    name = choose_model(series, split)
    results = backtest([series])
    forecasts, intervals = {}, {}
    for horizon, h in HORIZONS.items():
        result = results[horizon]
        confidence = result.within_band / result.intervals if result.intervals else 0.0
        price = CANDIDATES[name](series, len(series) - 1, h)
        forecasts[horizon] = (price, round(confidence, 2))
        offsets = interval_offsets(CANDIDATES[name], series, split, h)
        if price is not None and offsets is not None:
            intervals[horizon] = (price + offsets[0], price + offsets[1])
    mapes = [results[h].model.mape() for h in HORIZONS if results[h].model.percent]
    accuracy = max(0.0, 1 - statistics.fmean(mapes) / 100) if mapes else 0.0
    return Prediction(series[-1], name, forecasts, round(accuracy, 3), len(known), intervals)
