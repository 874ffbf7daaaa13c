"""Portal pages: market."""

urlpatterns: list = []
