from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dumont.api import HealthView

api_patterns = [
    path("health", HealthView.as_view(), name="health"),
    path("", include("accounts.api.urls")),
    path("", include("instances.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("spot.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("snapshots.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
]

handler400 = "dumont.errors.json_bad_request"
handler403 = "dumont.errors.json_forbidden"
handler404 = "dumont.errors.json_not_found"
handler500 = "dumont.errors.json_server_error"
