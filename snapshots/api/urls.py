from django.urls import path
from rest_framework.routers import SimpleRouter

from snapshots.api import views
from snapshots.api.agent_storage import StorageTokenView

router = SimpleRouter(trailing_slash=False)
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")

urlpatterns = [
    path("agent/storage-token", StorageTokenView.as_view(), name="agent-storage-token"),
    *router.urls,
]
