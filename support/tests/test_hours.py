"""Support's clock: business hours in São Paulo, Monday to Friday 9h-18h."""

from datetime import UTC, datetime

import pytest

from support.hours import add_business_hours


@pytest.mark.parametrize(
    ("start", "hours", "due"),
    [
        # Tuesday 07:00 BRT, before opening: the clock starts at 09:00.
        (datetime(2026, 11, 24, 10, 0, tzinfo=UTC), 4, datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
        # Tuesday 20:00 BRT, after closing: Wednesday 09:00 + 2 h.
        (datetime(2026, 11, 24, 23, 0, tzinfo=UTC), 2, datetime(2026, 11, 25, 14, 0, tzinfo=UTC)),
        # Sunday: Monday 09:00 + 9 h is the end of Monday.
        (datetime(2026, 11, 29, 15, 0, tzinfo=UTC), 9, datetime(2026, 11, 30, 21, 0, tzinfo=UTC)),
        # Friday 17:59 BRT, 1 h: one minute on Friday, 59 on Monday.
        (datetime(2026, 11, 27, 20, 59, tzinfo=UTC), 1, datetime(2026, 11, 30, 12, 59, tzinfo=UTC)),
    ],
)
def test_business_hours_skip_nights_and_weekends(start, hours, due):
    assert add_business_hours(start, hours) == due
