import json
import stat

from dumont_client import config


def test_login_saves_the_token_for_the_owner_only_and_later_commands_use_it(
    owner, live_server, config_dir, dumont
):
    logged = dumont("login", "--api-url", f"{live_server.url}/api/", "--token", owner.token)

    assert logged.exit_code == 0, logged.stderr
    assert owner.user.email in logged.stdout
    path = config_dir / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"api_url": live_server.url, "api_key": owner.token}
    balance = dumont("billing", "balance", "--json")
    assert balance.exit_code == 0, balance.stderr
    assert json.loads(balance.stdout)["balance_usd"] == "79.00"


def test_login_asks_for_the_address_and_token_when_not_given(owner, live_server, dumont):
    logged = dumont("login", input=f"{live_server.url}\n{owner.token}\n")

    assert logged.exit_code == 0, logged.stderr
    assert config.read_config() == {"api_url": live_server.url, "api_key": owner.token}


def test_login_with_a_bad_token_fails_in_one_line_and_saves_nothing(
    db, live_server, config_dir, dumont
):
    logged = dumont("login", "--api-url", live_server.url, "--token", "dmt_not-a-token")

    assert logged.exit_code != 0
    assert logged.stderr.count("\n") == 1
    assert logged.stderr.startswith("error: invalid_token: ")
    assert "Traceback" not in logged.stderr + logged.stdout
    assert not (config_dir / "config.json").exists()


def test_a_revoked_saved_token_fails_in_one_line(owner, live_server, dumont):
    config.write_config(api_url=live_server.url, api_key=owner.token)
    owner.client.delete(f"/api/tokens/{owner.user.api_tokens.get().pk}")

    listed = dumont("list")

    assert listed.exit_code == 1
    assert listed.stderr.startswith("error: invalid_token: ")
    assert listed.stderr.count("\n") == 1


def test_without_any_login_the_command_says_how_to_log_in(dumont):
    listed = dumont("list")

    assert listed.exit_code == 1
    assert listed.stderr.startswith("error: not_logged_in: ")
    assert "dumont login" in listed.stderr
