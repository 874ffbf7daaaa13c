"""Portal pages: account."""

urlpatterns: list = []
