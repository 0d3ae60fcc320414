"""GET /api/v1/openapi.json: the API's OpenAPI 3.1 document, held to the routes the app has."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel
from starlette.routing import Route

from gitopsd.api import bodies, calls
from gitopsd.model import state
from tests.api.conftest import MakeClient, TestClient
from tests.api.test_auth_matrix import ENDPOINTS, TOKENS, Endpoint

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def served(make_client: MakeClient) -> dict[str, Any]:
    """The document as a daemon with tokens serves it, to a caller without one."""
    response = make_client(tokens=TOKENS).get("/api/v1/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def app_routes(client: TestClient) -> set[tuple[str, str]]:
    routes = client.app.routes  # type: ignore[attr-defined]
    found = set()
    for route in routes:
        assert isinstance(route, Route)
        found |= {(m.lower(), route.path) for m in route.methods or () if m != "HEAD"}
    return found


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_it_is_a_valid_openapi_3_1_document(served: dict[str, Any]) -> None:
    assert served["openapi"].startswith("3.1")
    validate(served)


def test_every_route_of_the_app_is_documented_and_every_documented_route_exists(
    served: dict[str, Any], client: TestClient
) -> None:
    routes = app_routes(client)
    assert ("get", "/api/v1/openapi.json") in routes
    assert documented(served) == routes


def operation(document: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    path = endpoint.path.split("?")[0]
    for template, item in document["paths"].items():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if re.fullmatch(pattern, path) and endpoint.method.lower() in item:
            found: dict[str, Any] = item[endpoint.method.lower()]
            return found
    raise AssertionError(f"{endpoint} is not documented")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_each_route_documents_its_role_success_and_auth_errors(
    served: dict[str, Any], endpoint: Endpoint
) -> None:
    documented_operation = operation(served, endpoint)
    assert documented_operation["x-role"] == endpoint.role
    assert {str(endpoint.success), "401", "403"} <= set(documented_operation["responses"])


@pytest.mark.parametrize(
    ("schema", "model"),
    [
        ("RunRequest", bodies.RunRequest),
        ("ApprovalRequest", bodies.ApprovalRequest),
        ("SuspensionRequest", bodies.SuspensionRequest),
        ("NoFields", bodies.NoFields),
        ("DriftRequest", bodies.DriftRequest),
        ("PromotionRequest", bodies.PromotionRequest),
    ],
)
def test_documented_bodies_have_the_fields_the_app_accepts(
    served: dict[str, Any], schema: str, model: type[BaseModel]
) -> None:
    body = served["components"]["schemas"][schema]
    assert set(body.get("properties", {})) == set(model.model_fields)
    assert body["additionalProperties"] is False
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(body.get("required", [])) == required


def test_routes_without_a_token_are_the_documented_ones(
    served: dict[str, Any], make_client: MakeClient
) -> None:
    """Every GET without a path parameter, asked without a token: 200 if documented open."""
    guarded = make_client(tokens=TOKENS)
    gets = [path for method, path in documented(served) if method == "get" and "{" not in path]
    assert len(gets) >= 6
    for path in gets:
        open_route = served["paths"][path]["get"].get("security") == []
        assert guarded.get(path).status_code == (200 if open_route else 401), path


def test_documented_page_limits_are_the_apps(served: dict[str, Any], client: TestClient) -> None:
    limits = served["components"]["parameters"]
    for name, default in (("limit50", 50), ("limit100", 100)):
        schema = limits[name]["schema"]
        assert (schema["maximum"], schema["default"]) == (calls.MAX_LIMIT, default)
    over = client.get(f"/api/v1/runs?limit={calls.MAX_LIMIT + 1}")
    assert over.status_code == 422
    assert client.get(f"/api/v1/runs?limit={calls.MAX_LIMIT}").status_code == 200


def test_documented_statuses_are_the_models(served: dict[str, Any]) -> None:
    schemas = served["components"]["schemas"]
    environment = schemas["Environment"]["properties"]
    component = environment["components"]["items"]["properties"]
    pairs = [
        (environment["status"], state.EnvironmentStatus),
        (component["status"], state.ComponentStatus),
        (component["drift"], state.DriftStatus),
        (schemas["Step"]["properties"]["status"], state.StepStatus),
    ]
    for documented_values, enum in pairs:
        assert documented_values["enum"] == [member.value for member in enum], enum.__name__
