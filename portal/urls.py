"""The portal's pages, at the site root (the API lives under /api/, the admin under /admin/)."""

from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.DashboardPage.as_view(), name="dashboard"),
]
