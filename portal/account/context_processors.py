"""allauth's account pages (password, e-mail, 2FA) are settings pages: the menu says so."""

# URL names of allauth's pages that a signed-in person reaches from /settings/security/.
SETTINGS_URL_PREFIXES = ("account_email", "account_change_password", "account_set_password", "mfa_")


def account_menu(request) -> dict:
    match = getattr(request, "resolver_match", None)
    name = (match.url_name or "") if match else ""
    if request.user.is_authenticated and name.startswith(SETTINGS_URL_PREFIXES):
        return {"nav": "settings", "section": "security"}
    return {}
