"""ASGI entry point: Django for HTTP, Channels for /ws/tenant/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dumont.settings")
django_application = get_asgi_application()

# Imported after Django is set up: these modules use the ORM.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from dumont.consumers import TenantAuthMiddleware, TenantConsumer  # noqa: E402
from instances.fast_heartbeat import HeartbeatFastLane  # noqa: E402

websocket_routes = URLRouter([path("ws/tenant/", TenantConsumer.as_asgi())])

application = ProtocolTypeRouter(
    {
        "http": HeartbeatFastLane(django_application),
        "websocket": AuthMiddlewareStack(TenantAuthMiddleware(websocket_routes)),
    }
)
