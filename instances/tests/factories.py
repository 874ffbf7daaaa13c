import factory
from django.utils import timezone

from accounts.tests.factories import TenantFactory
from instances.models import Instance, Standby, new_instance_id


class InstanceFactory(factory.django.DjangoModelFactory):
    """An instance row as a given status left it (no machine); lifecycle tests use the API."""

    class Meta:
        model = Instance

    id = factory.LazyFunction(new_instance_id)
    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"box-{n}")
    gpu = "RTX 4090"
    region = "US-East"
    max_price_micros = 500_000
    provision_key = factory.LazyAttribute(lambda instance: f"{instance.id}-1")
    status_changed_at = factory.LazyFunction(timezone.now)


class StandbyFactory(factory.django.DjangoModelFactory):
    """A standby row of `instance` in the given status (no VM)."""

    class Meta:
        model = Standby

    instance = factory.SubFactory(InstanceFactory)
    tenant = factory.SelfAttribute("instance.tenant")
    region = "US-West"
    provider = "sim"
    provision_key = factory.Sequence(lambda n: f"standby-{n}")
