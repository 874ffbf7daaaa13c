"""The week in 6-hour windows: interruption risk and price of a GPU in each (UTC).

Each window's hazard is a posterior like spot/risk.py's: the window's share of the prior plus
the interruptions seen in it over the last 4 weeks, against its share of the machine-hours.
The safe-windows endpoint ranks these; the portal's market page draws all of them as a heatmap.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from spot import prices, risk

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WINDOW_HOURS = 6
LOOKBACK = timedelta(days=28)


@dataclass(frozen=True)
class Week:
    windows: list[dict]  # 28 windows, Monday 00-06 first: the endpoint's window fields
    weekly_average_usd: float | None  # mean hourly price over the lookback, None without data
    risk: risk.Risk  # the GPU's risk over the lookback (what the windows rest on)


def _index(moment: datetime) -> int:
    return (moment.weekday() * 24 + moment.hour) // WINDOW_HOURS


def week(gpu_name: str, now: datetime) -> Week:
    """Every 6-hour window of the week with its safety score (P(no interruption in the
    window)), average price and the interruptions seen in it over the last 4 weeks."""
    since = now - LOOKBACK
    stats = risk.risk(gpu_name, since, now)
    per_window = [0] * (7 * 24 // WINDOW_HOURS)
    events = risk.Interruption.objects.filter(gpu=gpu_name, occurred_at__gte=since)
    for occurred_at in events.values_list("occurred_at", flat=True):
        per_window[_index(occurred_at)] += 1
    window_prices: dict[int, list[float]] = {}
    for moment, price in prices.hourly_points(gpu_name, since, now):
        window_prices.setdefault(_index(moment), []).append(price)
    observed = [price for values in window_prices.values() for price in values]
    weekly_average = sum(observed) / len(observed) if observed else None
    windows = []
    share = 1 / len(per_window)
    for index, count in enumerate(per_window):
        # Posterior for the window: its share of the prior plus what was seen in it.
        exposure = stats.machine_hours * share
        hazard = (count + risk.PRIOR_HOURS * share * stats.prior_hazard_per_hour) / (
            exposure + risk.PRIOR_HOURS * share
        )
        in_window = window_prices.get(index)
        average = sum(in_window) / len(in_window) if in_window else None
        windows.append(
            {
                "day_of_week": DAYS[index * WINDOW_HOURS // 24],
                "start_hour": index * WINDOW_HOURS % 24,
                "end_hour": index * WINDOW_HOURS % 24 + WINDOW_HOURS,
                "safety_score": round(math.exp(-hazard * WINDOW_HOURS), 4),
                "avg_price": round(average, 4) if average is not None else None,
                "interruptions_observed": count,
            }
        )
    return Week(windows, weekly_average, stats)


def ranked(windows: list[dict]) -> list[dict]:
    """Safest first; among equally safe windows, the cheaper first."""

    def rank(window):
        price = window["avg_price"] if window["avg_price"] is not None else math.inf
        return (-window["safety_score"], price)

    return sorted(windows, key=rank)
