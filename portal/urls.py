"""The portal's pages, at the site root (the API lives under /api/, the admin under /admin/).

One package per area, each with its own urls/views/forms and templates/portal/<area>/:
instances (dashboard, new-instance wizard, instance detail, snapshots), market, billing,
account (sign-in, 2FA, SSH keys, tokens, members) and the support app's pages.
"""

from django.urls import include, path

app_name = "portal"

urlpatterns = [
    path("", include("portal.instances.urls")),
    path("market/", include("portal.market.urls")),
    path("billing/", include("portal.billing.urls")),
    path("settings/", include("portal.account.urls")),
    path("settings/", include("portal.integrations.urls")),
    path("support/", include("support.urls")),
]
