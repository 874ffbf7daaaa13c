"""The portal's pages in a real browser (Debian's Chromium through Playwright) against the live
system: market charts drawn without console errors at desktop and phone widths, credits bought
through the fake Stripe Checkout, the language switcher, and the instance pages (dashboard,
instance page, wizard, snapshots) at both widths with live snapshot progress."""

import threading

import pytest

from billing import ledger
from conftest import wait_until
from instances.models import Instance
from instances.tests.factories import InstanceFactory
from snapshots.models import Snapshot
from snapshots.services import snapshot_payload

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _chart_drawn(page, canvas_id: str) -> bool:
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const chart = canvas && window.Chart && Chart.getChart(canvas);
            return Boolean(chart) && canvas.width > 0 && canvas.height > 0;
        }""",
        canvas_id,
    )


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_the_market_page_draws_its_charts_at_both_widths(live_portal, owner, market, tab, request):
    page = request.getfixturevalue(tab)
    live_portal.sign_in(page, owner.user)

    response = live_portal.goto(page, "/market/?gpu=H100")

    assert response.status == 200
    page.wait_for_function("document.documentElement.dataset.live === 'on'")  # websocket open
    assert _chart_drawn(page, "price-chart")
    assert page.locator(".heatmap tbody tr").count() == 7
    assert page.locator("#availability tbody tr").count() == 2
    page.fill("#savings_hours", "250")
    page.click("#savings button[type=submit]")
    page.wait_for_selector("#savings-result >> text=250 hours of H100")
    assert page.url.endswith("/market/?gpu=H100")  # htmx swapped the result in place
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"] + 1  # nothing wider than the screen
    assert page.console_errors == []


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_the_billing_page_shows_the_balance_and_credits_go_through_checkout(
    live_portal, owner, tab, request
):
    page = request.getfixturevalue(tab)
    live_portal.sign_in(page, owner.user)
    before = ledger.balance_micros(owner.tenant)

    live_portal.goto(page, "/billing/")
    assert page.locator(".balance").inner_text() == f"${before / 1_000_000:.2f}"
    assert _chart_drawn(page, "usage-chart")
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.fill("#topup_amount_usd", "20")
    page.check("#add-credits input[value=pix]")
    page.click("#add-credits button[type=submit]")

    page.wait_for_url(f"{live_portal.stripe_url}/**")
    assert "R$" in page.content() or "brl" in page.content().lower()
    page.click("button[value=pay]")
    page.wait_for_url(f"{live_portal.url}/billing/?checkout=success")
    expected = f"${(before + 20_000_000) / 1_000_000:.2f}"

    def balance_shown() -> bool:
        live_portal.goto(page, "/billing/")
        return page.locator(".balance").inner_text() == expected

    wait_until(balance_shown, timeout=30, every=0.5)
    assert page.console_errors == []


def test_the_language_switcher_turns_the_page_portuguese(live_portal, owner, phone_page):
    page = phone_page
    live_portal.sign_in(page, owner.user)
    live_portal.goto(page, "/billing/")
    assert page.get_attribute("html", "lang") == "en"

    with page.expect_navigation():
        page.select_option("select[name=language]", "pt-br")

    page.wait_for_load_state("networkidle")
    assert page.get_attribute("html", "lang") == "pt-br"
    assert page.url.endswith("/billing/")
    assert page.console_errors == []


def _push(tenant_id: int, event: str, data: dict) -> None:
    """A live event as a worker sends it (in a thread: Playwright's loop runs in this one)."""
    from dumont.live import push_to_tenant

    pusher = threading.Thread(target=push_to_tenant, args=(tenant_id, event, data))
    pusher.start()
    pusher.join()


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"] + 1


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_the_instance_pages_fit_both_widths_without_errors(live_portal, owner, tab, request):
    page = request.getfixturevalue(tab)
    live_portal.sign_in(page, owner.user)
    instance = InstanceFactory(
        tenant=owner.tenant,
        name="a-rather-long-instance-name-for-a-phone",
        status=Instance.Status.RUNNING,
        price_micros=412_345,
        ssh_host="ssh7.gpu-hosts.example.net",
        ssh_port=41022,
    )
    snapshot = Snapshot.objects.create(
        tenant=owner.tenant,
        instance=instance,
        name="checkpoint-after-epoch-3",
        source_gpu=instance.gpu,
        source_region=instance.region,
        status=Snapshot.Status.COMPLETED,
        engine_snapshot_id="e1",
        size_bytes=3_000_000_000,
    )

    for path in [
        "/",
        f"/instances/{instance.pk}/",
        "/instances/new/",
        "/snapshots/",
        f"/snapshots/{snapshot.pk}/restore/",
    ]:
        response = live_portal.goto(page, path)
        assert response.status == 200, path
        assert _fits(page), path
    live_portal.goto(page, "/instances/new/")
    with page.expect_navigation():
        page.click("button[name=skip]")
    page.select_option("select[name=gpu]", "A100")
    page.wait_for_selector("#market-now >> text=A100")  # the live market follows the choice
    assert _fits(page)
    assert page.console_errors == []


def test_a_snapshot_shows_its_progress_live_and_deletes_from_its_row(live_portal, owner, page):
    live_portal.sign_in(page, owner.user)
    instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
    snapshot = Snapshot.objects.create(
        tenant=owner.tenant,
        instance=instance,
        name="nightly",
        source_gpu=instance.gpu,
        status=Snapshot.Status.RUNNING,
        bytes_done=100,
        bytes_total=1000,
    )
    live_portal.goto(page, "/snapshots/")
    page.wait_for_function("document.documentElement.dataset.live === 'on'")
    page.evaluate("window.notReloaded = true")
    row = page.locator(f"tr[data-snapshot-id={snapshot.pk}]")
    assert row.locator("progress").get_attribute("value") == "10"

    Snapshot.objects.filter(pk=snapshot.pk).update(bytes_done=600)
    _push(owner.tenant.pk, "snapshot.progress", snapshot_payload(snapshot))
    row.locator("progress[value='60']").wait_for()
    Snapshot.objects.filter(pk=snapshot.pk).update(
        status=Snapshot.Status.COMPLETED, engine_snapshot_id="e2", size_bytes=1000
    )
    _push(owner.tenant.pk, "snapshot.completed", snapshot_payload(snapshot))
    row.locator("[data-snapshot-status=completed]").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("[data-action=delete]").click()

    # The row says "Deleting", then the live worker forgets the snapshot in the repository
    # (quickly: it has no data there) and the row leaves the list.
    row.wait_for(state="detached", timeout=60_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.console_errors == []


def test_the_last_card_deleted_live_leaves_the_empty_state(live_portal, owner, page):
    live_portal.sign_in(page, owner.user)
    instance = InstanceFactory(tenant=owner.tenant, status=Instance.Status.RUNNING)
    live_portal.goto(page, "/")
    page.wait_for_function("document.documentElement.dataset.live === 'on'")
    page.evaluate("window.notReloaded = true")
    page.locator(f"[data-instance-id={instance.pk}]").wait_for()

    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.DELETED)
    _push(owner.tenant.pk, "instance.status", {"instance": {"id": instance.pk}})

    page.locator(".empty-state").wait_for()
    assert page.locator("[data-instance-id]").count() == 0
    assert page.evaluate("window.notReloaded") is True
    assert page.console_errors == []


@pytest.mark.parametrize("tab", ["page", "phone_page"])
def test_the_other_pages_fit_both_widths_without_errors(live_portal, owner, market, tab, request):
    from support.models import Ticket
    from webhooks.models import WebhookEndpoint

    page = request.getfixturevalue(tab)
    for path in ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"]:
        response = live_portal.goto(page, path)
        assert response.status == 200, path
        assert _fits(page), path
    live_portal.sign_in(page, owner.user)
    endpoint = WebhookEndpoint.objects.create(
        tenant=owner.tenant, url="https://hooks.example.com/dumont", events=["instance.status"]
    )
    ticket = Ticket.objects.create(
        tenant=owner.tenant, opened_by=owner.user, subject="My instance does not start"
    )

    for path in [
        "/market/",
        "/billing/",
        "/settings/",
        "/settings/security/",
        "/settings/ssh-keys/",
        "/settings/tokens/",
        "/settings/members/",
        "/settings/standby/",
        "/settings/webhooks/",
        f"/settings/webhooks/{endpoint.pk}/",
        "/support/",
        "/support/new/",
        f"/support/{ticket.pk}/",
    ]:
        response = live_portal.goto(page, path)
        assert response.status == 200, path
        assert _fits(page), path
    assert page.console_errors == []
