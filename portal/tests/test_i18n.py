"""The portal in Brazilian Portuguese: once the session chooses pt-br the pages speak it, and the
one catalogue (locale/pt_BR/LC_MESSAGES/django.po, compiled to the committed django.mo) leaves no
string in English."""

import ast
import gettext
import html
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.test import Client

from accounts.context import TenantContext
from support import services as support

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "pt_BR" / "LC_MESSAGES"

# The top menu, Portuguese beside the English it replaces.
MENU = {
    "Dashboard": "Painel",
    "New instance": "Nova instância",
    "Market": "Mercado",
    "Billing": "Faturamento",
    "Settings": "Configurações",
    "Support": "Suporte",
}


@pytest.fixture
def portuguese(owner) -> Client:
    client = Client()
    client.force_login(owner.user)
    client.post("/i18n/setlang/", {"language": "pt-br", "next": "/"})
    return client


def _text(page: str) -> str:
    """What a reader sees: the page without its scripts, styles and tags, spaces collapsed."""
    page = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", page)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _assert_portuguese(page: str, portuguese: list[str], english: list[str]) -> None:
    text = _text(page)
    assert '<html lang="pt-br"' in page
    for english_label, label in MENU.items():
        assert f">{label}</a>" in page
        assert f">{english_label}</a>" not in page
    for words in portuguese:
        assert words in text, f"{words!r} is not on the page"
    for words in english:  # whole words: "Remove" is not in "Remover"
        found = re.search(rf"(?<!\w){re.escape(words)}(?!\w)", text)
        assert not found, f"{words!r} is still in English"


def _public_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{line.decode()} ada@laptop"


@pytest.mark.django_db
def test_the_dashboard_speaks_portuguese(portuguese):
    page = portuguese.get("/").content.decode()

    assert "<title>Painel · Dumont Cloud</title>" in page
    assert 'aria-label="Idioma"' in page  # the language switcher
    _assert_portuguese(page, ["Painel"], ["Dashboard"])


@pytest.mark.django_db
def test_the_ssh_keys_page_speaks_portuguese(portuguese):
    refused = portuguese.post("/settings/ssh-keys/", {"name": "bad", "public_key": "ssh-ed25519 x"})
    assert refused.status_code == 400
    assert "Isto não é uma chave pública OpenSSH" in _text(refused.content.decode())

    added = portuguese.post(
        "/settings/ssh-keys/", {"name": "laptop", "public_key": _public_key()}, follow=True
    )

    _assert_portuguese(
        added.content.decode(),
        [
            "Chave SSH “laptop” adicionada.",
            "Chaves SSH",
            "Estas chaves públicas são instaladas em todas as instâncias da sua organização.",
            "Impressão digital",
            "Adicionada em",
            "Remover",
            "Adicionar chave",
            "Tokens de API",
            "Membros",
        ],
        ["SSH keys", "Fingerprint", "Add key", "Remove", "API tokens", "Members", "Public key"],
    )


@pytest.mark.django_db
def test_the_support_pages_speak_portuguese(portuguese, owner):
    ticket = support.open_ticket(
        TenantContext(membership=owner.membership), subject="Disco lento", body="Leitura lenta."
    )

    listing = portuguese.get("/support/").content.decode()
    detail = portuguese.get(f"/support/{ticket.pk}/").content.decode()

    _assert_portuguese(
        listing,
        ["Pergunte o que quiser", "Abrir um chamado", "Assunto", "Prioridade", "Aberto em"],
        ["Open a ticket", "Subject", "Priority", "First answer", "Opened"],
    )
    _assert_portuguese(
        detail,
        [f"Chamado #{ticket.pk}", "Primeira resposta:", "Responder", "Fechar chamado"],
        ["Ticket #", "First answer", "Reply", "Close ticket"],
    )


@pytest.mark.django_db
def test_the_billing_page_speaks_portuguese(portuguese):
    page = portuguese.get("/billing/").content.decode()

    _assert_portuguese(
        page,
        [
            "Saldo",
            "Usado este mês:",
            "Adicionar créditos",
            "Pagar com",
            "Continuar para o pagamento",
            "Uso por dia",
            "Alertas de orçamento",
            "Salvar o orçamento",
            "Extrato",
            "Crédito do período de teste",  # the trial's row of the ledger
        ],
        ["Balance", "Add credits", "Usage per day", "Budget alerts", "Ledger", "Trial credit"],
    )
    assert 'aria-label="Uso cobrado por dia nos últimos 30 dias"' in page


@pytest.mark.django_db
def test_the_market_page_speaks_portuguese(portuguese, market):
    page = portuguese.get("/market/?gpu=H100").content.decode()

    _assert_portuguese(
        page,
        [
            "Preços spot e sua previsão",
            "Histórico de preços da H100",
            "Previsão (intervalo de 80% obtido no backtest do próprio modelo)",
            "Disponibilidade por região",
            "Janelas seguras",
            "Calculadora de economia",
            "Todas as regiões",
        ],
        ["price history", "Forecast", "Availability by region", "Safe windows", "Savings"],
    )
    assert 'data-label-band="Intervalo de 80%"' in page  # a doubled %% would show here


def _unquote(line: str) -> str:
    return ast.literal_eval(line)  # a PO string is a double-quoted C string: \n \t \" \\


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: each a dict of its keywords (msgid, msgid_plural, msgstr,
    msgstr[0], ...) and its flags. Obsolete entries (#~) are left out."""
    entries: list[dict] = []
    entry: dict | None = None
    keyword = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            entry = keyword = None
            continue
        if line.startswith("#~"):
            continue
        if entry is None:
            entry = {"flags": set()}
            entries.append(entry)
        if line.startswith("#,"):
            entry["flags"].update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[keyword] += _unquote(line)
        else:
            keyword, _, value = line.partition(" ")
            entry[keyword] = _unquote(value)
    return [entry for entry in entries if "msgid" in entry]


PLACEHOLDERS = re.compile(r"%\(\w+\)[sd]|%%|\{\w*\}|</?\w+>")


def _placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDERS.findall(text))


def test_every_string_of_the_catalogue_is_translated():
    header, *entries = read_po(CATALOGUE / "django.po")

    assert header["msgid"] == "" and "fuzzy" not in header["flags"]
    assert "Language: pt_BR\n" in header["msgstr"]
    assert "Plural-Forms: nplurals=2; plural=(n > 1);\n" in header["msgstr"]
    assert len(entries) > 300
    untranslated = []
    for entry in entries:
        if "msgid_plural" in entry:
            pairs = [(entry["msgid"], entry.get("msgstr[0]", ""))]
            pairs.append((entry["msgid_plural"], entry.get("msgstr[1]", "")))
        else:
            pairs = [(entry["msgid"], entry.get("msgstr", ""))]
        if "fuzzy" in entry["flags"] or not all(msgstr.strip() for _, msgstr in pairs):
            untranslated.append(entry["msgid"])
            continue
        for msgid, msgstr in pairs:
            assert _placeholders(msgstr) == _placeholders(msgid), (msgid, msgstr)
    assert untranslated == [], "run `make messages` and translate these"


def test_the_committed_mo_file_is_compiled_from_the_po_file():
    """`make run` reads django.mo: it must hold every translation of django.po."""
    entries = read_po(CATALOGUE / "django.po")[1:]
    with (CATALOGUE / "django.mo").open("rb") as compiled:
        catalogue = gettext.GNUTranslations(compiled)

    stale = []
    for entry in entries:
        if "msgid_plural" in entry:
            singular = catalogue.ngettext(entry["msgid"], entry["msgid_plural"], 1)
            plural = catalogue.ngettext(entry["msgid"], entry["msgid_plural"], 2)
            if (singular, plural) != (entry["msgstr[0]"], entry["msgstr[1]"]):
                stale.append(entry["msgid"])
        elif catalogue.gettext(entry["msgid"]) != entry["msgstr"]:
            stale.append(entry["msgid"])
    assert stale == [], "run `make messages` (or manage.py compilemessages -l pt_BR)"
