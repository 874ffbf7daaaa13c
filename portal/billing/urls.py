"""Portal pages: billing."""

urlpatterns: list = []
