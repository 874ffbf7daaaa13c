from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and tenants"

    def ready(self) -> None:
        from allauth.mfa.signals import authentication_failed

        from accounts import schema  # noqa: F401  (registers the OpenAPI security schemes)
        from accounts.adapters import audit_failed_second_factor

        authentication_failed.connect(
            audit_failed_second_factor, dispatch_uid="accounts.audit_failed_second_factor"
        )
