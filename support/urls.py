"""Included by portal/urls.py at support/ (namespace `portal`)."""

from django.urls import path

from support import views

urlpatterns = [
    path("", views.TicketListPage.as_view(), name="support-tickets"),
    path("new/", views.NewTicketPage.as_view(), name="support-ticket-new"),
    path("<int:pk>/", views.TicketPage.as_view(), name="support-ticket"),
    path("<int:pk>/close/", views.CloseTicketPage.as_view(), name="support-ticket-close"),
]
