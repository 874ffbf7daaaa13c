"""POST /api/advisor against a local OpenAI-compatible server; rules answer when it can't."""

import json
import time

import pytest
from werkzeug import Response

from spot import compute
from spot.catalog import find_gpu

pytestmark = pytest.mark.django_db

ASK = {"workload": "LoRA fine-tune of a 7B chat model", "dataset_size": "200MB"}


@pytest.fixture
def model_server(httpserver, settings):
    """A fake chat-completions API; tests tell it what to answer."""
    settings.ADVISOR_API_BASE = httpserver.url_for("/v1")
    settings.ADVISOR_API_KEY = "sk-test-key"
    settings.ADVISOR_MODEL = "test/model"
    settings.ADVISOR_TIMEOUT_SECONDS = 1.0
    return httpserver


def _completion(content: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


def _answering(server, answer) -> None:
    content = answer if isinstance(answer, str) else json.dumps(answer)
    server.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        _completion(content)
    )


def _sent_options(server) -> list[dict]:
    (request, _), *_ = server.log
    return json.loads(request.get_json()["messages"][1]["content"])["options"]


def _recomputed_cost(body: dict) -> float:
    """Price x GPUs x 6·N·D hours, from the catalog and the compute model, not from the API."""
    gpu = find_gpu(body["gpu"])
    hours = compute.training_hours(7, 200e6 / compute.BYTES_PER_TOKEN, gpu, body["gpu_count"])
    return body["price_per_hour_usd"] * hours


def test_without_a_key_the_rules_pick_the_cheapest_option(owner, market, settings):
    settings.ADVISOR_API_KEY = ""

    response = owner.client.post("/api/advisor", ASK, format="json")

    body = response.json()
    assert response.status_code == 200
    assert body["source"] == "rules" and body["fallback_reason"] == "no_api_key"
    assert body["inputs"]["mode"] == "lora" and body["inputs"]["parameters_billions"] == 7
    assert body["estimated_cost_usd"] == pytest.approx(_recomputed_cost(body), abs=0.01)
    assert all(
        body["estimated_cost_usd"] <= other["estimated_cost_usd"] for other in body["alternatives"]
    )
    assert body["gpu"] in body["reasoning"] and body["region"] in body["arithmetic"]


def test_the_model_picks_among_our_options_and_our_numbers_are_returned(
    owner, market, model_server
):
    def second_option_with_wrong_numbers(request):
        offered = json.loads(request.get_json()["messages"][1]["content"])["options"]
        answer = {
            "option_id": 2,
            "gpu": offered[1]["gpu"],
            "region": offered[1]["region"],
            "estimated_cost_usd": 0.01,
            "estimated_hours": 0.01,
            "reasoning": "Option 2 is a good balance of speed and price.",
        }
        return Response(
            json.dumps(_completion(json.dumps(answer))), content_type="application/json"
        )

    model_server.expect_request("/v1/chat/completions").respond_with_handler(
        second_option_with_wrong_numbers
    )

    response = owner.client.post("/api/advisor", ASK, format="json")

    body = response.json()
    sent = _sent_options(model_server)
    (request, _), *_ = model_server.log
    assert request.headers["Authorization"] == "Bearer sk-test-key"
    assert request.get_json()["model"] == "test/model"
    assert body["source"] == "llm" and body["model"] == "test/model"
    assert (body["gpu"], body["gpu_count"]) == (sent[1]["gpu"], sent[1]["gpu_count"])
    assert body["reasoning"] == "Option 2 is a good balance of speed and price."
    assert body["estimated_cost_usd"] == sent[1]["estimated_cost_usd"] != 0.01
    assert body["estimated_cost_usd"] == pytest.approx(_recomputed_cost(body), abs=0.01)
    assert any("quoted $0.01" in note for note in body["notes"])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I recommend an H100.", "invalid_answer"),
        ({"option_id": 99, "gpu": "H100", "region": None, "estimated_cost_usd": 1,
          "estimated_hours": 1, "reasoning": "x"}, "invalid_answer"),
        ({"option_id": 1, "gpu": "TPU v5", "region": None, "estimated_cost_usd": 1,
          "estimated_hours": 1, "reasoning": "x"}, "invalid_answer"),
        ({"option_id": 1, "gpu": "H100"}, "invalid_answer"),
    ],
)  # fmt: skip
def test_an_answer_that_fails_validation_falls_back_to_rules(
    owner, market, model_server, answer, reason
):
    _answering(model_server, answer)

    body = owner.client.post("/api/advisor", ASK, format="json").json()

    assert body["source"] == "rules" and body["fallback_reason"] == reason
    assert len(model_server.log) == 1


def test_a_slow_model_times_out_into_rules(owner, market, model_server):
    def slow(request):
        time.sleep(2)
        return Response(json.dumps(_completion("{}")), content_type="application/json")

    model_server.expect_request("/v1/chat/completions").respond_with_handler(slow)

    body = owner.client.post("/api/advisor", ASK, format="json").json()

    assert body["source"] == "rules" and body["fallback_reason"] == "timeout"


def test_an_upstream_error_falls_back_to_rules(owner, market, model_server):
    model_server.expect_request("/v1/chat/completions").respond_with_data("busy", status=503)

    body = owner.client.post("/api/advisor", ASK, format="json").json()

    assert body["source"] == "rules" and body["fallback_reason"] == "upstream_error"


def test_an_impossible_deadline_gets_the_fastest_option_within_budget(owner, market, settings):
    settings.ADVISOR_API_KEY = ""
    ask = {**ASK, "workload": "full training of a 7B model", "dataset_size": "5GB"}
    options = owner.client.post("/api/advisor", {**ask, "budget_usd": 1e6}, format="json").json()
    every = [options, *options["alternatives"]]

    body = owner.client.post(
        "/api/advisor", {**ask, "budget_usd": 1e6, "deadline_hours": 0.01}, format="json"
    ).json()

    assert body["meets_deadline"] is False and body["meets_budget"] is True
    assert body["estimated_hours"] <= min(option["estimated_hours"] for option in every)
    assert all(
        body["estimated_hours"] <= option["estimated_hours"] for option in body["alternatives"]
    )
    assert "fastest" in body["reasoning"]


def test_serving_is_priced_by_the_hour(owner, market, settings):
    settings.ADVISOR_API_KEY = ""

    body = owner.client.post(
        "/api/advisor",
        {"workload": "serve llama 13B as a chat API", "serving_hours": 10},
        format="json",
    ).json()

    assert body["inputs"]["mode"] == "inference" and body["estimated_hours"] == 10
    assert body["estimated_cost_usd"] == pytest.approx(body["price_per_hour_usd"] * 10, abs=0.01)


@pytest.mark.parametrize(
    ("ask", "code"),
    [
        ({"workload": "train something"}, "model_size_required"),
        ({"workload": "train a 7B model", "budget_usd": -5}, "min_value"),
        ({"workload": "train a 7B model", "region": "Moon"}, "unknown_region"),
        ({"workload": "full training of a 1500B model", "mode": "full"}, "model_too_large"),
        ({"model_size": "7B"}, "required"),
    ],
)
def test_bad_requests_are_a_400_with_a_code(owner, market, ask, code):
    response = owner.client.post("/api/advisor", ask, format="json")

    assert response.status_code == 400 and response.json()["code"] == code
