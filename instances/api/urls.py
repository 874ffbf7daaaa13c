from django.urls import path
from rest_framework.routers import SimpleRouter

from instances.api import views

router = SimpleRouter(trailing_slash=False)
router.register("instances", views.InstanceViewSet, basename="instance")

urlpatterns = [
    path("agent/heartbeat", views.HeartbeatView.as_view(), name="agent-heartbeat"),
    *router.urls,
]
