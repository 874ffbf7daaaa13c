"""Fixtures of the support tests: browsers signed in as a tenant's people, and support staff."""

import pytest
from django.test import Client

from accounts.tests.factories import UserFactory
from billing.models import Plan, Subscription


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner.user)
    return client


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True, email="help@dumont.cloud"))
    return client


@pytest.fixture
def on_plan():
    """Put a tenant on a seed plan (active), as a paid checkout would."""

    def subscribe(tenant, code: str) -> None:
        Subscription.objects.filter(tenant=tenant).update(
            plan=Plan.objects.get(code=code), status=Subscription.Status.ACTIVE
        )

    return subscribe
