"""The SDK against the real API on a real port."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from billing import ledger
from dumont_client import (
    Balance,
    Client,
    Instance,
    InsufficientCredits,
    NoCapacity,
    NotFound,
    SshKey,
)
from instances.models import Instance as InstanceRow
from instances.tests.factories import InstanceFactory


@pytest.fixture
def client(owner, live_server):
    with Client(api_key=owner.token, base_url=live_server.url) as client:
        yield client


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def test_the_faq_snippet_creates_an_instance(owner, live_server, simulator):
    client = Client(api_key=owner.token, base_url=live_server.url)

    instance = client.instances.create(gpu="RTX 4090")

    assert isinstance(instance, Instance)
    assert (instance.status, instance.gpu, instance.gpu_count) == ("pending", "RTX 4090", 1)
    assert instance.max_price == 5.0
    assert InstanceRow.objects.get(pk=instance.id).tenant == owner.tenant


def test_the_client_takes_its_key_and_address_from_the_environment(owner, live_server, monkeypatch):
    monkeypatch.setenv("DUMONT_API_KEY", owner.token)
    monkeypatch.setenv("DUMONT_API_URL", live_server.url)

    me = Client().me()

    assert me.email == owner.user.email


def test_listing_instances_goes_past_the_first_page(two_tenants, live_server):
    a, b = two_tenants
    mine = {row.id for row in InstanceFactory.create_batch(57, tenant=a.tenant)}
    InstanceFactory.create_batch(3, tenant=b.tenant)
    client = Client(api_key=a.token, base_url=live_server.url)

    listed = list(client.instances.list())

    assert len(listed) == 57
    assert {instance.id for instance in listed} == mine
    assert all(isinstance(instance, Instance) for instance in listed)


def test_no_capacity_carries_the_alternatives(client, simulator):
    with pytest.raises(NoCapacity) as raised:
        client.instances.create(gpu="H100", max_price=0.05)

    error = raised.value
    assert (error.status_code, error.code) == (409, "no_capacity")
    assert error.alternatives
    assert {"gpu", "region", "price_per_hour", "why"} <= set(error.alternatives[0])


def test_too_little_credit_is_insufficient_credits(owner, client, simulator):
    ledger.post(owner.tenant, "adjustment", -78_990_000, idempotency_key="spent")

    with pytest.raises(InsufficientCredits) as raised:
        client.instances.create(gpu="RTX4090", region="us-east", max_price=2)

    assert (raised.value.status_code, raised.value.code) == (402, "insufficient_credits")
    assert "$0.01" in raised.value.detail


def test_another_tenants_instance_is_not_found(two_tenants, live_server):
    a, b = two_tenants
    theirs = InstanceFactory(tenant=b.tenant)

    with pytest.raises(NotFound) as raised:
        Client(api_key=a.token, base_url=live_server.url).instances.get(theirs.id)

    assert (raised.value.status_code, raised.value.code) == (404, "not_found")


def test_ssh_keys_come_back_typed(client):
    created = client.ssh_keys.create("laptop", _public_key())

    assert isinstance(created, SshKey)
    assert created.key_type == "ssh-ed25519"
    assert created.fingerprint.startswith("SHA256:")
    assert [key.name for key in client.ssh_keys.list()] == ["laptop"]
    client.ssh_keys.delete(created.id)
    assert list(client.ssh_keys.list()) == []


def test_the_balance_is_typed_and_the_ledger_iterates(client):
    balance = client.billing.balance()

    assert isinstance(balance, Balance)
    assert (balance.balance_micro_usd, balance.balance_usd) == (79_000_000, "79.00")
    assert sum(entry.amount_micros for entry in client.billing.ledger()) == 79_000_000


def test_webhook_endpoints_are_created_pinged_and_deleted(client, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]

    webhook = client.webhooks.create("http://127.0.0.1:9/hook", ["instance.running"])

    assert webhook.secret and webhook.events == ["instance.running"]
    client.webhooks.ping(webhook.id)
    assert [delivery.event for delivery in client.webhooks.deliveries(webhook.id)] == ["ping"]
    client.webhooks.delete(webhook.id)
    assert list(client.webhooks.list()) == []
