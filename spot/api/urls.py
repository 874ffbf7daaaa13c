from django.urls import path
from rest_framework.routers import SimpleRouter

from spot.api import advisor, alerts, views

router = SimpleRouter(trailing_slash=False)
router.register("spot/alerts", alerts.PriceAlertViewSet, basename="spot-alert")

urlpatterns = [
    path("advisor", advisor.AdvisorView.as_view(), name="advisor"),
    path("spot/monitor", views.MonitorView.as_view(), name="spot-monitor"),
    path("spot/llm-gpus", views.LlmGpusView.as_view(), name="spot-llm-gpus"),
    path("spot/fleet-strategy", views.FleetStrategyView.as_view(), name="spot-fleet-strategy"),
    path("spot/prediction/<str:gpu_name>", views.PredictionView.as_view(), name="spot-prediction"),
    path("spot/availability", views.AvailabilityView.as_view(), name="spot-availability"),
    path("spot/training-cost", views.TrainingCostView.as_view(), name="spot-training-cost"),
    path("spot/savings", views.SavingsView.as_view(), name="spot-savings"),
    path("spot/reliability", views.ReliabilityView.as_view(), name="spot-reliability"),
    path(
        "spot/interruption-rates",
        views.InterruptionRatesView.as_view(),
        name="spot-interruption-rates",
    ),
    path(
        "spot/safe-windows/<str:gpu_name>",
        views.SafeWindowsView.as_view(),
        name="spot-safe-windows",
    ),
]
urlpatterns += router.urls
