import factory

from accounts.context import TenantContext
from accounts.models import Membership, Tenant, User
from accounts.services import create_api_token, create_tenant


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda number: f"person{number}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def save_password(self, create, extracted, **kwargs):
        if create:
            self.save()


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    name = factory.Sequence(lambda number: f"Org {number}")


PASSWORD = "correct horse battery"


def make_account(role: str = Membership.Role.OWNER, tenant: Tenant | None = None):
    """A user with `role` in `tenant` (a new organisation if None) and a live API token."""
    user = UserFactory()
    if tenant is None:
        tenant = create_tenant(TenantFactory.build().name, user)
        membership = Membership.objects.get(user=user, tenant=tenant)
        if role != Membership.Role.OWNER:
            membership.role = role
            membership.save()
    else:
        membership = Membership.objects.create(user=user, tenant=tenant, role=role)
    _, plaintext = create_api_token(TenantContext(membership=membership), "test token")
    return user, tenant, membership, plaintext
