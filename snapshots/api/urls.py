from rest_framework.routers import SimpleRouter

from snapshots.api import views

router = SimpleRouter(trailing_slash=False)
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")

urlpatterns = router.urls
