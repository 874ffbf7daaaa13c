"""The interruption prior: AWS's Spot Instance Advisor as a hazard per machine-hour.

Source: spot/data/reference/aws_spot_advisor.csv (2025-06-28 snapshot, Linux). The mean bucket
of the matching accelerator, read as the share of capacity reclaimed per month (bucket
midpoints), becomes a hazard per hour. GPUs AWS does not rent get the middle bucket. Django-free:
the simulator uses it for its interruptions.
"""

import csv
import math
from functools import cache

from spot.catalog import REFERENCE_DIR

HOURS_PER_MONTH = 730
BUCKET_MIDPOINTS = (0.025, 0.075, 0.125, 0.175, 0.225)  # AWS buckets <5 % ... >20 % per month
DEFAULT_MONTHLY_INTERRUPTION = 0.125
AWS_ACCELERATOR = {
    "A100": "A100-80GB",
    "H100": "H100",
    "H200": "H200",
    "L40S": "L40S",
    "V100": "V100",
    "L4": "L4",
    "T4": "T4",
}


@cache
def _aws_monthly() -> dict[str, float]:
    indexes: dict[str, list[int]] = {}
    with (REFERENCE_DIR / "aws_spot_advisor.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["snapshot_date"] == "2025-06-28" and row["os"] == "Linux":
                indexes.setdefault(row["accelerator"], []).append(int(row["interruption_index"]))
    return {
        accelerator: sum(BUCKET_MIDPOINTS[index] for index in values) / len(values)
        for accelerator, values in indexes.items()
    }


def prior_hazard_per_hour(gpu: str) -> float:
    monthly = _aws_monthly().get(AWS_ACCELERATOR.get(gpu, ""), DEFAULT_MONTHLY_INTERRUPTION)
    return -math.log(1 - monthly) / HOURS_PER_MONTH
