"""Portal pages: account settings (under /settings/). Sign-in pages are allauth's, at /accounts/."""

from django.urls import path

from portal.account import views

urlpatterns = [
    path("", views.SettingsIndex.as_view(), name="account-settings"),
    path("security/", views.SecurityPage.as_view(), name="account-security"),
    path("ssh-keys/", views.SshKeysPage.as_view(), name="account-ssh-keys"),
    path("ssh-keys/<int:pk>/remove/", views.RemoveSshKey.as_view(), name="account-ssh-key-remove"),
    path("tokens/", views.TokensPage.as_view(), name="account-tokens"),
    path("tokens/created/", views.TokenCreatedPage.as_view(), name="account-token-created"),
    path("tokens/<int:pk>/revoke/", views.RevokeToken.as_view(), name="account-token-revoke"),
    path("members/", views.MembersPage.as_view(), name="account-members"),
    path("members/<int:pk>/role/", views.ChangeRole.as_view(), name="account-member-role"),
    path("members/<int:pk>/remove/", views.RemoveMember.as_view(), name="account-member-remove"),
]
