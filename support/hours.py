"""When a ticket's first answer is due: the plan's response time, on support's clock.

Support works business hours (FAQ: 9h-18h BRT, Monday to Friday) except for plans with
round-the-clock support (Enterprise, 24/7), whose hours are plain clock hours.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from billing.entitlements import Entitlements

SUPPORT_TIME_ZONE = ZoneInfo("America/Sao_Paulo")
OPENS = time(9)
CLOSES = time(18)
WORKING_DAYS = range(0, 5)  # Monday..Friday


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, tzinfo=SUPPORT_TIME_ZONE)


def _next_working_day(day: date) -> date:
    day += timedelta(days=1)
    while day.weekday() not in WORKING_DAYS:
        day += timedelta(days=1)
    return day


def add_business_hours(start: datetime, hours: int) -> datetime:
    """`start` plus `hours` counted only while support is open."""
    remaining = timedelta(hours=hours)
    cursor = start.astimezone(SUPPORT_TIME_ZONE)
    if cursor.weekday() not in WORKING_DAYS or cursor >= _at(cursor.date(), CLOSES):
        cursor = _at(_next_working_day(cursor.date()), OPENS)
    elif cursor < _at(cursor.date(), OPENS):
        cursor = _at(cursor.date(), OPENS)
    while True:
        open_left = _at(cursor.date(), CLOSES) - cursor
        if remaining <= open_left:
            return cursor + remaining
        remaining -= open_left
        cursor = _at(_next_working_day(cursor.date()), OPENS)


def first_response_due(opened_at: datetime, entitlements: Entitlements) -> datetime | None:
    """When the first answer is due under these entitlements; None for best effort."""
    hours = entitlements["support_response_hours"]
    if hours is None:
        return None
    if entitlements.get("has_round_the_clock_support"):
        return opened_at + timedelta(hours=hours)
    return add_business_hours(opened_at, hours)
