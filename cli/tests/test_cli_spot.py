"""The spot commands print what the spot API computes from imported market history."""

import json

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_spot_monitor_prints_a_price_table(logged_in, market, dumont):
    shown = dumont("spot", "monitor")
    answer = json.loads(dumont("spot", "monitor", "--json").stdout)

    assert shown.exit_code == 0, shown.stderr
    assert answer["price_trends"]
    for row in answer["price_trends"]:
        assert row["gpu_name"] in shown.stdout


def test_spot_predict_prints_the_three_horizons(logged_in, market, dumont):
    shown = dumont("spot", "predict", "h100")

    assert shown.exit_code == 0, shown.stderr
    assert "H100" in shown.stdout
    for horizon in ("1h", "6h", "24h"):
        assert horizon in shown.stdout


def test_spot_safe_windows_prints_the_safest_windows(logged_in, market, dumont):
    answer = json.loads(dumont("spot", "safe-windows", "H100", "--json").stdout)
    shown = dumont("spot", "safe-windows", "H100")

    assert shown.exit_code == 0, shown.stderr
    assert len(answer["safe_windows"]) == 3
    for window in answer["safe_windows"]:
        assert window["day_of_week"] in shown.stdout


def test_spot_savings_compares_with_aws(logged_in, market, dumont):
    answer = json.loads(
        dumont("spot", "savings", "--gpu", "A100", "--hours", "100", "--json").stdout
    )
    shown = dumont("spot", "savings", "--gpu", "A100", "--hours", "100")

    assert shown.exit_code == 0, shown.stderr
    assert answer["cost_aws"] > answer["cost_dumont"] > 0
    assert "AWS" in shown.stdout


def test_an_unknown_gpu_is_one_error_line(logged_in, dumont):
    shown = dumont("spot", "predict", "GTX9999")

    assert shown.exit_code == 1
    assert shown.stderr.startswith("error: ")
    assert "Unknown GPU 'GTX9999'" in shown.stderr
    assert shown.stderr.count("\n") == 1
