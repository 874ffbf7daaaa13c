"""Failover rents its new GPU away from the host that failed, even when that host's offer is
the cheapest one left in the region it looks in first."""

from urllib.parse import urlencode

import pytest

from billing.models import Subscription
from conftest import wait_until
from instances.models import Failover, Instance
from snapshots.tests.conftest import snapshot_platform, snapshot_store  # noqa: F401
from snapshots.tests.test_snapshots import running_instance

pytestmark = pytest.mark.django_db(transaction=True)
Status = Instance.Status


def test_an_interrupted_gpu_fails_over_to_another_offer_than_the_failed_one_still_cheapest(
    owner,
    snapshot_platform,  # noqa: F811
):
    Subscription.objects.filter(tenant=owner.tenant).delete()  # no standby: recover at once
    created = running_instance(owner, gpu="RTX 4090", region="US-East", max_price=2.0)
    failed = Instance.objects.get(pk=created["id"])

    interrupted = owner.client.post(f"/api/instances/{failed.pk}/simulate-interruption")
    assert interrupted.status_code == 202
    recovered = wait_until(
        lambda: (
            (now := Instance.objects.get(pk=failed.pk)).status == Status.RUNNING
            and now.provider_id != failed.provider_id
            and now
        ),
        timeout=90,
    )

    machine = snapshot_platform.get(f"/v1/machines/{recovered.provider_id}")
    assert machine["offer_id"] != failed.offer_id
    assert recovered.offer_id == machine["offer_id"]
    assert recovered.region != failed.region  # the failed offer is its region's only RTX 4090
    (failover,) = Failover.objects.filter(instance=recovered)
    assert (failover.failed_offer_id, failover.status) == (failed.offer_id, "completed")
    # The failed host was rentable all along: the first (cheapest) offer in the region a
    # replacement looks in first, with a machine free.
    offers = snapshot_platform.get(
        "/v1/offers?"
        + urlencode(
            {
                "gpu": "RTX 4090",
                "region": failed.region,
                "gpu_count": 1,
                "max_price_micros": failed.max_price_micros,
            }
        )
    )["offers"]
    assert offers[0]["offer_id"] == failed.offer_id
    assert offers[0]["available"] >= 1
