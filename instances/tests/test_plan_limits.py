"""A plan's entitlements bound instance creation: how many instances, and in which regions."""

import pytest

from billing.models import Plan, Subscription
from instances.models import Instance
from instances.tests.factories import InstanceFactory

pytestmark = pytest.mark.django_db


def _create(account, **body):
    body = {"gpu": "RTX 4090", "max_price": 2.0, **body}
    return account.client.post("/api/instances", body, format="json")


def _on_plan(tenant, **plan_fields) -> Plan:
    plan = Plan.objects.create(
        code=f"custom-{tenant.pk}",
        name="Enterprise ACME",
        price_minor=0,
        currency="USD",
        **plan_fields,
    )
    Subscription.objects.filter(tenant=tenant).update(plan=plan, status="active")
    return plan


def test_a_plan_full_of_instances_refuses_another_with_403_and_creates_nothing(owner, simulator):
    _on_plan(owner.tenant, max_instances=2)
    InstanceFactory(tenant=owner.tenant, status="running")
    InstanceFactory(tenant=owner.tenant, status="hibernated")  # a hibernated one keeps its place

    response = _create(owner, region="US-East")

    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "instance_limit_reached"
    assert body["plan"] == f"custom-{owner.tenant.pk}"
    assert "allows 2 instances" in body["detail"]
    assert Instance.objects.for_tenant(owner.tenant).count() == 2


def test_deleted_and_failed_instances_free_their_place(owner, simulator):
    _on_plan(owner.tenant, max_instances=1)
    InstanceFactory(tenant=owner.tenant, status="deleted")
    InstanceFactory(tenant=owner.tenant, status="error")

    assert _create(owner, region="US-East").status_code == 202
    assert _create(owner, region="US-East").json()["code"] == "instance_limit_reached"


def test_the_trial_allows_the_pro_plans_ten_instances(owner, simulator):
    for _ in range(9):
        InstanceFactory(tenant=owner.tenant, status="running")

    assert _create(owner, region="US-East").status_code == 202
    assert _create(owner, region="US-East").status_code == 403


def test_another_tenants_instances_do_not_count(two_tenants, simulator):
    a, b = two_tenants
    _on_plan(b.tenant, max_instances=1)
    for _ in range(3):
        InstanceFactory(tenant=a.tenant, status="running")

    assert _create(b, region="US-East").status_code == 202


def test_a_plan_limited_to_regions_refuses_another_region(owner, simulator):
    _on_plan(owner.tenant, regions=["EU-West"])

    response = _create(owner, region="US-East")

    assert response.status_code == 403
    assert response.json()["code"] == "region_not_in_plan"
    assert "EU-West" in response.json()["detail"]
    assert not Instance.objects.for_tenant(owner.tenant).exists()


def test_without_a_region_the_instance_goes_where_the_plan_allows(owner, simulator):
    _on_plan(owner.tenant, regions=["EU-West"])

    response = _create(owner)

    assert response.status_code == 202, response.content
    assert response.json()["requested_region"] == "EU-West"
