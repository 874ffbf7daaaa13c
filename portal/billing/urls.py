"""Portal pages: billing."""

from django.urls import path

from portal.billing import views

urlpatterns = [
    path("", views.BillingPage.as_view(), name="billing"),
    path("credits/", views.TopUpView.as_view(), name="billing-top-up"),
    path("plan/subscribe/", views.SubscribeView.as_view(), name="billing-subscribe"),
    path("plan/portal/", views.StripePortalView.as_view(), name="billing-stripe-portal"),
    path("plan/cancel/", views.CancelPlanView.as_view(), name="billing-cancel-plan"),
    path("budget/", views.BudgetUpdateView.as_view(), name="billing-budget"),
]
