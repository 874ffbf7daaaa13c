"""Webhook URLs may reach only public addresses, unless WEBHOOK_ALLOWED_HOSTS allows them."""

import ipaddress

import pytest
from django.db import transaction

from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import emit
from webhooks.tests.factories import receiver_url

WEBHOOKS = "/api/webhooks"

REFUSED = [
    "http://127.0.0.1/hook",
    "http://10.0.0.5/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://localhost:8000/hook",
    "http://192.168.1.10/",
    "http://172.16.0.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::]/",
    "https://metadata.google.internal/computeMetadata/v1/",
]


def _create(account, url: str):
    return account.client.post(
        WEBHOOKS, {"url": url, "events": ["instance.running"]}, format="json"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED)
def test_a_url_that_reaches_a_non_public_address_is_refused(owner, url):
    response = _create(owner, url)

    assert response.status_code == 400
    assert response.json()["code"] == "url_not_allowed"
    assert "public" in response.json()["detail"] or "metadata" in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://localhost:8000/hook",
    ],
)
def test_the_same_urls_are_accepted_when_the_allowlist_names_them(owner, settings, url):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.0/8", "10.0.0.5", "169.254.169.254", "[::1]"]

    response = _create(owner, url)

    assert response.status_code == 201, response.content
    assert WebhookEndpoint.objects.get().url == url


@pytest.mark.django_db
def test_an_allowlisted_host_name_is_accepted_whatever_it_resolves_to(owner, settings):
    settings.WEBHOOK_ALLOWED_HOSTS = ["localhost"]

    assert _create(owner, "http://localhost:9000/in").status_code == 201
    assert _create(owner, "http://127.0.0.1:9000/in").json()["code"] == "url_not_allowed"


@pytest.mark.django_db
def test_a_public_address_needs_no_allowlist(owner):
    response = _create(owner, "https://93.184.216.34/dumont")

    assert response.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/hook",
        "file:///etc/passwd",
        "not a url",
        "https://user:password@93.184.216.34/hook",
        "https://no-such-host.invalid/hook",
    ],
)
def test_a_url_that_is_not_http_with_a_resolvable_host_and_no_credentials_is_invalid(owner, url):
    response = _create(owner, url)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_url"


@pytest.mark.django_db
def test_changing_the_url_to_a_private_address_is_refused(owner):
    endpoint_id = _create(owner, "https://93.184.216.34/dumont").json()["id"]

    response = owner.client.patch(
        f"{WEBHOOKS}/{endpoint_id}", {"url": "http://10.0.0.5/"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "url_not_allowed"
    assert WebhookEndpoint.objects.get().url == "https://93.184.216.34/dumont"


@pytest.mark.parametrize(
    ("address", "is_public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("100.127.255.254", False),
        ("::ffff:10.0.0.5", False),
        ("64:ff9b::a00:5", False),  # NAT64 of 10.0.0.5
        ("2002:a00:5::1", False),  # 6to4 of 10.0.0.5
        ("fec0::1", False),
        ("ff02::1", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
    ],
)
def test_which_addresses_count_as_public(address, is_public):
    from webhooks.ssrf import is_public_address

    assert is_public_address(ipaddress.ip_address(address)) is is_public


@pytest.mark.django_db
def test_the_address_is_checked_again_when_delivering(
    owner, settings, httpserver, tasks_run_here, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    created = _create(owner, receiver_url(httpserver))
    assert created.status_code == 201
    settings.WEBHOOK_ALLOWED_HOSTS = []

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        emit(owner.tenant, "instance.running", {"instance": {"id": 1}})

    delivery = WebhookDelivery.objects.get()
    assert httpserver.log == []
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.attempt_count == 1
    assert "public addresses" in delivery.last_error
