"""Portal pages: dashboard, new-instance wizard, instance detail, snapshots."""

from django.urls import path

from portal import views

urlpatterns = [
    path("", views.DashboardPage.as_view(), name="dashboard"),
]
