"""Portal pages: Standby Config (auto-hibernation) and webhooks with their delivery log."""

urlpatterns: list = []
