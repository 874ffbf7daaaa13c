from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api import views

router = SimpleRouter(trailing_slash=False)
router.register("tokens", views.ApiTokenViewSet, basename="token")
router.register("ssh-keys", views.SshKeyViewSet, basename="ssh-key")
router.register("members", views.MemberViewSet, basename="member")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")

urlpatterns = [
    path("auth/signup", views.SignupView.as_view(), name="auth-signup"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("me", views.MeView.as_view(), name="me"),
    path("settings/standby", views.StandbySettingsView.as_view(), name="standby-settings"),
    *router.urls,
]
