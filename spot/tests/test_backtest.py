import json

from django.core.management import call_command

from spot import forecast, history


def test_the_backtest_prints_the_contract_json_and_the_model_is_not_worse_than_no_change(
    capsys,
):
    call_command("spot_backtest", "--series", str(history.TRACKER_SERIES), "--json")

    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"1h", "6h", "24h"}
    for horizon in result.values():
        assert set(horizon) == {"model", "no_change", "seasonal_naive", "coverage_80"}
        for name in ("model", "no_change", "seasonal_naive"):
            assert set(horizon[name]) == {"mae", "mape"}
        assert 0 <= horizon["coverage_80"] <= 1
    model = sum(result[h]["model"]["mape"] for h in result)
    naive = sum(result[h]["no_change"]["mape"] for h in result)
    assert model <= naive


def test_a_file_that_is_not_a_series_is_one_readable_error(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")

    try:
        call_command("spot_backtest", "--series", str(bad))
    except Exception as error:  # CommandError: manage.py prints it as one line, exit 1
        assert "not a price series file" in str(error)
    else:
        raise AssertionError("a bad file must be refused")


def test_a_forecast_carries_its_80_percent_interval_from_the_training_errors():
    # A daily rhythm with a weekly step: the training part has errors of both signs.
    series = [1.0 + 0.1 * ((hour % 24) >= 12) + 0.05 * ((hour // 24) % 2) for hour in range(120)]

    prediction = forecast.predict(series)

    assert set(prediction.intervals) == set(forecast.HORIZONS)
    split = int(len(series) * forecast.TRAIN_SHARE)
    for horizon, hours in forecast.HORIZONS.items():
        price = prediction.forecasts[horizon][0]
        low, high = prediction.intervals[horizon]
        offsets = forecast.interval_offsets(
            forecast.CANDIDATES[prediction.model], series, split, hours
        )
        assert (low, high) == (price + offsets[0], price + offsets[1])
        assert low <= price <= high
