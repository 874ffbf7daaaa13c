"""Portal pages: market."""

from django.urls import path

from portal.market import views

urlpatterns = [
    path("", views.MarketPage.as_view(), name="market"),
    path("savings/", views.SavingsPartial.as_view(), name="market-savings"),
]
