from rest_framework.routers import SimpleRouter

from support.api import views

router = SimpleRouter(trailing_slash=False)
router.register("support/tickets", views.TicketViewSet, basename="support-ticket")

urlpatterns = router.urls
