from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from accounts.signals import tenant_created
        from billing.trial import start_trial

        def grant_trial(sender, tenant, owner, **kwargs):
            start_trial(tenant, owner)

        tenant_created.connect(grant_trial, dispatch_uid="billing.grant_trial", weak=False)
