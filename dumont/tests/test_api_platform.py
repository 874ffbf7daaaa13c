"""The API as a whole: error shape, OpenAPI schema, docs."""

import json
import subprocess
import sys

import pytest
from django.conf import settings
from openapi_spec_validator import validate


@pytest.mark.django_db
def test_an_unknown_api_path_is_a_json_404(owner):
    response = owner.client.get("/api/no-such-thing")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.django_db
def test_an_unsupported_method_is_a_json_405(owner):
    response = owner.client.put("/api/me", {}, format="json")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_an_unauthenticated_call_is_a_401_with_a_code(anonymous):
    response = anonymous.get("/api/me")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_an_unknown_token_is_a_401_invalid_token(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer dmt_not-a-real-token")

    response = anonymous.get("/api/me")

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_3(anonymous):
    response = anonymous.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    validate(schema)
    assert "/api/ssh-keys" in schema["paths"]
    assert "/api/auth/signup" in schema["paths"]


@pytest.mark.django_db
def test_the_schema_documents_the_error_shape_of_each_operation(anonymous):
    schema = json.loads(anonymous.get("/api/schema/?format=json").content)

    ssh_key = schema["paths"]["/api/ssh-keys/{id}"]
    signup = schema["paths"]["/api/auth/signup"]["post"]["responses"]
    assert set(ssh_key["get"]["responses"]) >= {"200", "401", "403", "404"}
    assert set(signup) >= {"201", "400", "429"}
    assert "401" not in signup
    error = signup["400"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "detail"]


def test_the_schema_generates_without_warnings():
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--fail-on-warn", "--file", "/dev/null"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_the_docs_page_loads_swagger_from_our_own_static_files(anonymous):
    response = anonymous.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
