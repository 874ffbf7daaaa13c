"""Portal pages: Standby Config (auto-hibernation) and webhooks with their delivery log."""

from django.urls import path

from portal.integrations import views

urlpatterns = [
    path("standby/", views.StandbyPage.as_view(), name="integrations-standby"),
    path("webhooks/", views.WebhookListPage.as_view(), name="integrations-webhooks"),
    path("webhooks/<int:pk>/", views.WebhookPage.as_view(), name="integrations-webhook"),
    path("webhooks/<int:pk>/edit/", views.EditWebhook.as_view(), name="integrations-webhook-edit"),
    path(
        "webhooks/<int:pk>/toggle/",
        views.ToggleWebhook.as_view(),
        name="integrations-webhook-toggle",
    ),
    path("webhooks/<int:pk>/test/", views.TestWebhook.as_view(), name="integrations-webhook-test"),
    path(
        "webhooks/<int:pk>/rotate-secret/",
        views.RotateWebhookSecret.as_view(),
        name="integrations-webhook-rotate",
    ),
    path(
        "webhooks/<int:pk>/delete/",
        views.DeleteWebhook.as_view(),
        name="integrations-webhook-delete",
    ),
]
