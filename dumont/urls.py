from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dumont.api import HealthView, LivenessView, ReadinessView
from dumont.metrics import metrics_view

api_patterns = [
    path("health", HealthView.as_view(), name="health"),
    path("health/live", LivenessView.as_view(), name="health-live"),
    path("health/ready", ReadinessView.as_view(), name="health-ready"),
    path("", include("accounts.api.urls")),
    path("", include("instances.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("spot.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("snapshots.api.urls")),
    path("", include("support.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

# Staff sign in through the portal's sign-in (with its 2FA step), not a password-only form.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),  # Prometheus (dumont/metrics.py)
    path("api/", include(api_patterns)),
    path("storage/v1/", include("snapshots.gateway")),  # machines' repository access, not /api/
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/", include("allauth.urls")),  # sign-up, sign-in, 2FA (django-allauth)
    path("", include("portal.urls")),
]

# JSON under /api/, HTML pages elsewhere.
handler400 = "portal.errors.bad_request"
handler403 = "portal.errors.forbidden"
handler404 = "portal.errors.not_found"
handler500 = "portal.errors.server_error"
