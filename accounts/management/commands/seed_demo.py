"""`manage.py seed_demo`: the demo organisation and user of `make run`, printed every time.

The credentials are kept in $DUMONT_HOME/demo.json (mode 0600) so a second run reuses them;
if the password was changed or the token revoked, fresh ones are issued.
"""

import json
import os
import secrets

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.authentication import context_for_token
from accounts.context import TenantContext
from accounts.models import Membership, User
from accounts.services import create_api_token, create_tenant

DEMO_EMAIL = "demo@dumont.local"
DEMO_ORGANIZATION = "Demo Org"


class Command(BaseCommand):
    help = "Create (or reuse) the demo tenant and user and print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options):
        path = settings.DUMONT_HOME / "demo.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            credentials = self._ensure_demo(saved)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(credentials, handle, indent=2)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Dumont Cloud is starting. Demo account (also a Django admin):",
                    f"  e-mail:    {credentials['email']}",
                    f"  password:  {credentials['password']}",
                    f"  API token: {credentials['token']}",
                    f"  health:    {base_url}/api/health",
                    f"  API docs:  {base_url}/api/docs/",
                    f"  admin:     {base_url}/admin/",
                    f"  try:       curl -H 'Authorization: Bearer {credentials['token']}' "
                    f"{base_url}/api/me",
                    "",
                ]
            )
        )

    def _ensure_demo(self, saved: dict) -> dict:
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is None:
            user = User.objects.create_superuser(DEMO_EMAIL, None)
        # The demo signs in to the portal at once, whatever EMAIL_VERIFICATION says.
        EmailAddress.objects.update_or_create(
            user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
        )
        password = saved.get("password", "")
        if not password or not user.check_password(password):
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save(update_fields=["password"])
        membership = Membership.objects.filter(user=user).select_related("tenant").first()
        if membership is None:
            create_tenant(DEMO_ORGANIZATION, user)
            membership = Membership.objects.select_related("tenant").get(user=user)
        token = saved.get("token", "")
        if not token or context_for_token(token) is None:
            _, token = create_api_token(TenantContext(membership=membership), "demo")
        return {
            "email": DEMO_EMAIL,
            "password": password,
            "token": token,
            "tenant_id": membership.tenant_id,
        }
