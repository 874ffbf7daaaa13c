from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api import views

router = SimpleRouter(trailing_slash=False)
router.register("billing/ledger", views.LedgerViewSet, basename="ledger")
router.register("billing/invoices", views.InvoiceViewSet, basename="invoice")

urlpatterns = [
    path("billing/balance", views.BalanceView.as_view(), name="billing-balance"),
    path("billing/usage", views.UsageView.as_view(), name="billing-usage"),
    path("billing/plans", views.PlansView.as_view(), name="billing-plans"),
    path("billing/checkout", views.CheckoutView.as_view(), name="billing-checkout"),
    path("billing/stripe/webhook", views.StripeWebhookView.as_view(), name="stripe-webhook"),
    path("billing/budget", views.BudgetView.as_view(), name="billing-budget"),
    path("billing/subscription", views.SubscriptionView.as_view(), name="billing-subscription"),
    path("billing/portal", views.PortalView.as_view(), name="billing-portal"),
    *router.urls,
]
