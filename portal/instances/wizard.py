"""The new-instance wizard: workload → the GPU advisor → GPU, region and price (with the live
market) → SSH keys → confirm with the hourly price and what the balance covers → create.

The choices live in the session between steps (nothing is created before the last step), and
the last step calls instances.moves.create_instance like POST /api/instances does.
"""

from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import SshKey
from billing import ledger, metering
from billing.money import usd_text, usd_to_micros
from dumont.exceptions import DumontError
from instances.api.views import actor_of
from instances.exceptions import NoCapacity, ProviderUnavailable
from instances.moves import InstanceRequest, create_instance, search_offers
from portal.instances.facts import cents_text
from portal.instances.forms import MachineForm, SshKeysForm, WorkloadForm
from portal.instances.refusals import refusal
from portal.views import PortalPage
from spot import prices
from spot.advisor import advise, describe
from spot.catalog import find_gpu

SESSION_KEY = "portal_new_instance"
DEFAULT_GPU = "RTX 4090"
MARGIN_OVER_MARKET = Decimal("1.25")  # the suggested maximum: a quarter above the price now
STEPS = ["workload", "machine", "keys", "confirm"]
# The session key each step leaves, and the step to go back to when it is missing.
STEP_OF = {
    "machine_initial": "portal:instances-new",
    "machine": "portal:instances-new-machine",
    "ssh_key_ids": "portal:instances-new-keys",
}


def market_now(gpu_name: str, gpu_count: int, region: str, now: datetime) -> dict:
    """The market for `gpu_count` of a GPU now, and what the customer would pay per hour in
    `region` (any region when empty). Prices come from the provider's offers, the ones
    create_instance rents from; only when the provider does not answer, from the sampled market
    (spot/prices.py), which the page then labels as history."""
    try:
        offers = search_offers(
            gpu=gpu_name, region=None, gpu_count=gpu_count, max_price_micros=None
        )
    except ProviderUnavailable:
        return _sampled_market(gpu_name, gpu_count, region, now)
    regions: dict[str, dict] = {}
    for offer in offers:
        if offer.available <= 0:
            continue
        row = regions.setdefault(offer.region, {"available": 0, "min": offer.price_micros_per_hour})
        row["available"] += offer.available
        row["min"] = min(row["min"], offer.price_micros_per_hour)
    eligible = {name: row for name, row in regions.items() if not region or name == region}
    where = min(eligible, key=lambda name: eligible[name]["min"], default=None)
    rows = [
        {
            "region": name,
            "available": row["available"],
            "min_usd": usd_text(row["min"]),
            "is_chosen": name == region,
        }
        for name, row in sorted(regions.items())
    ]
    machine = eligible[where]["min"] if where else None
    available = sum(row["available"] for row in eligible.values())
    return _market(gpu_name, gpu_count, region, rows, available, where or "", machine)


def _sampled_market(gpu_name: str, gpu_count: int, region: str, now: datetime) -> dict:
    regions = prices.latest_by_region(gpu_name, now)
    price_micros, _where = prices.cheapest_offer(gpu_name, now, region=region, live=regions)
    rows = [
        {
            "region": row.region,
            "available": row.available,
            "min_usd": usd_text(row.min_micros * gpu_count),
            "is_chosen": row.region == region,
        }
        for row in regions
    ]
    available = sum(row.available for row in regions if not region or row.region == region)
    machine = price_micros * gpu_count if price_micros is not None else None
    return _market(gpu_name, gpu_count, region, rows, available, "", machine)


def _market(gpu_name, gpu_count, region, rows, available, price_region, machine) -> dict:
    """`price_region` is where the price is offered now; empty when it comes from history."""
    return {
        "gpu": gpu_name,
        "gpu_count": gpu_count,
        "region": region,
        "regions": rows,
        "available": available,
        "price_region": price_region,
        "market_usd": usd_text(machine) if machine is not None else None,
        "hourly_micros": metering.billed_price(machine) if machine is not None else None,
        "hourly_usd": usd_text(metering.billed_price(machine)) if machine is not None else None,
        "suggested_max_usd": suggested_max_usd(machine, gpu_count),
    }


def suggested_max_usd(machine_micros: int | None, gpu_count: int) -> str:
    """A maximum price to start from: a quarter above the market now, or (no price known) the
    default POST /api/instances uses."""
    if machine_micros:
        usd = Decimal(machine_micros) * MARGIN_OVER_MARKET / 1_000_000
    else:
        usd = Decimal(str(settings.DEFAULT_MAX_PRICE_PER_GPU_USD)) * gpu_count
    return str(usd.quantize(Decimal("0.01")))


class WizardStep(PortalPage):
    """One step; `needs` are the earlier steps' session keys it cannot do without."""

    nav = "new"
    step = ""
    needs: tuple[str, ...] = ()

    @property
    def state(self) -> dict:
        return self.request.session.get(SESSION_KEY, {})

    def save(self, **values) -> None:
        self.request.session[SESSION_KEY] = {**self.state, **values}

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            missing = [name for name in self.needs if name not in self.state]
            if missing:
                return redirect(STEP_OF[missing[0]])
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            step=self.step, step_number=STEPS.index(self.step) + 1, steps=len(STEPS), **kwargs
        )


class WorkloadStep(WizardStep):
    template_name = "portal/instances/wizard_workload.html"
    step = "workload"

    def get(self, request, *args, **kwargs):
        if "restart" in request.GET:
            request.session.pop(SESSION_KEY, None)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        kwargs.setdefault("form", WorkloadForm())
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        if "skip" in request.POST:
            self.save(machine_initial={})
            return redirect("portal:instances-new-machine")
        if "choose" in request.POST:
            return self.choose(request.POST)
        form = WorkloadForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        workload = form.cleaned_data["advisor_workload"]
        advice = advise(workload, timezone.now())
        if advice is None:
            form.add_error(None, _("No GPU that holds this model has a price right now."))
            return self.render_to_response(self.get_context_data(form=form), status=400)
        options = [advice.option, *advice.alternatives]
        return self.render_to_response(
            self.get_context_data(
                form=form,
                advice=advice,
                options=[
                    {
                        "gpu": option.gpu.name,
                        "gpu_count": option.gpu_count,
                        "region": option.region or "",
                        "hourly_usd": usd_text(
                            metering.billed_price(option.price_micros * option.gpu_count)
                        ),
                        "hours": option.hours,
                        "cost_usd": cents_text(
                            int(
                                metering.billed_price(option.price_micros * option.gpu_count)
                                * option.hours
                            )
                        ),
                        "arithmetic": describe(option, workload),
                        "is_recommended": option is advice.option,
                    }
                    for option in options
                ],
            )
        )

    def choose(self, data):
        """A recommendation taken: the machine step starts from it."""
        gpu = find_gpu(data.get("gpu", ""))
        if gpu is None:
            return redirect("portal:instances-new")
        count = data.get("gpu_count", "1")
        self.save(
            machine_initial={
                "gpu": gpu.name,
                "gpu_count": int(count) if count in {"1", "2", "4", "8"} else 1,
                "region": data.get("region", ""),
            }
        )
        return redirect("portal:instances-new-machine")


class MachineStep(WizardStep):
    template_name = "portal/instances/wizard_machine.html"
    step = "machine"
    needs = ("machine_initial",)

    def get_context_data(self, **kwargs):
        if "form" not in kwargs:
            initial = {"gpu": DEFAULT_GPU, "gpu_count": 1, "region": ""}
            initial.update(self.state.get("machine_initial", {}))
            initial.update(self.state.get("machine", {}))
            if "max_price" not in initial:
                market = market_now(
                    initial["gpu"], initial["gpu_count"], initial["region"], timezone.now()
                )
                initial["max_price"] = market["suggested_max_usd"]
            kwargs["form"] = MachineForm(initial=initial)
        form = kwargs["form"]
        gpu = form["gpu"].value()
        gpu = find_gpu(str(gpu or "")) or find_gpu(DEFAULT_GPU)
        count = gpu_count_of(form["gpu_count"].value())
        region = form["region"].value() or ""
        return super().get_context_data(
            market=market_now(gpu.name, count, region, timezone.now()), **kwargs
        )

    def post(self, request, *args, **kwargs):
        form = MachineForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        data = form.cleaned_data
        self.save(
            machine={
                "gpu": data["gpu"].name,
                "gpu_count": data["gpu_count"] or 1,
                "region": data["region"],
                "max_price": str(data["max_price"]),
                "name": data["name"],
            }
        )
        return redirect("portal:instances-new-keys")


def gpu_count_of(value) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        return 1
    return count if count in (1, 2, 4, 8) else 1


class MarketPartial(PortalPage):
    """The live price and availability of the GPU and region being chosen (htmx)."""

    template_name = "portal/instances/market_now.html"

    def get_context_data(self, **kwargs):
        query = self.request.GET
        gpu = find_gpu(query.get("gpu", "")) or find_gpu(DEFAULT_GPU)
        region = query.get("region", "")
        count = gpu_count_of(query.get("gpu_count"))
        market = market_now(gpu.name, count, region, timezone.now())
        return super().get_context_data(market=market, **kwargs)


class KeysStep(WizardStep):
    template_name = "portal/instances/wizard_keys.html"
    step = "keys"
    needs = ("machine_initial", "machine")

    def get_context_data(self, **kwargs):
        tenant = self.tenant_context.tenant
        kwargs.setdefault(
            "form",
            SshKeysForm(tenant=tenant, initial={"ssh_keys": self.state.get("ssh_key_ids", [])}),
        )
        return super().get_context_data(**kwargs)

    def post(self, request, *args, **kwargs):
        form = SshKeysForm(request.POST, tenant=self.tenant_context.tenant)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        self.save(ssh_key_ids=[key.pk for key in form.cleaned_data["ssh_keys"]])
        return redirect("portal:instances-new-confirm")


class ConfirmStep(WizardStep):
    template_name = "portal/instances/wizard_confirm.html"
    step = "confirm"
    needs = ("machine_initial", "machine", "ssh_key_ids")

    def get_context_data(self, **kwargs):
        tenant = self.tenant_context.tenant
        machine = self.state["machine"]
        market = market_now(machine["gpu"], machine["gpu_count"], machine["region"], timezone.now())
        max_micros = usd_to_micros(machine["max_price"])
        # Price now when the market has one under the maximum; else the most it may cost.
        hourly = market["hourly_micros"]
        if hourly is None or hourly > metering.billed_price(max_micros):
            hourly = metering.billed_price(max_micros)
            is_estimate = False
        else:
            is_estimate = True
        balance = ledger.balance_micros(tenant)
        keys = SshKey.objects.for_tenant(tenant).filter(pk__in=self.state["ssh_key_ids"])
        return super().get_context_data(
            machine=machine,
            market=market,
            keys=list(keys),
            hourly_usd=usd_text(hourly),
            is_market_price=is_estimate,
            max_hourly_usd=usd_text(metering.billed_price(max_micros)),
            balance_usd=cents_text(balance),
            hours_covered=max(0, balance) // hourly if hourly else None,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        machine = self.state["machine"]
        instance_request = InstanceRequest(
            gpu=machine["gpu"],
            gpu_count=machine["gpu_count"],
            region=machine["region"],
            max_price_micros=usd_to_micros(machine["max_price"]),
            name=machine["name"],
            ssh_key_ids=tuple(self.state["ssh_key_ids"]),
        )
        try:
            instance = create_instance(
                self.tenant_context.tenant, instance_request, actor=actor_of(self.tenant_context)
            )
        except DumontError as refused:
            alternatives = refused.alternatives if isinstance(refused, NoCapacity) else []
            context = self.get_context_data(error=refusal(refused), alternatives=alternatives)
            return self.render_to_response(context, status=400)
        request.session.pop(SESSION_KEY, None)
        messages.success(
            request,
            _("Instance “%(name)s” is on its way: its card turns running when the machine is up.")
            % {"name": instance.name},
        )
        return redirect("portal:dashboard")
