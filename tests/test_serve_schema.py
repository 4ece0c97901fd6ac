"""Schemathesis over the server's OpenAPI 3 spec (bounded examples per operation, against the
ASGI app): no 5xx, and every answer's status, content type and body match the spec.

The cases come from schemathesis' Python API (``schema.get_all_operations()`` and each
operation's hypothesis strategy) inside one test, since ``schemathesis.pytest.from_fixture``
does not run under this pytest (it reads ``Function._nodeid``, gone in pytest 9)."""

from __future__ import annotations

import pytest

import serve_support as ss

schemathesis = pytest.importorskip("schemathesis", reason="the [test] extra's schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MAX_EXAMPLES = 20


@pytest.fixture(scope="module")
def schema():
    from labelwise.serve import ServeSettings, create_app

    settings_ = ServeSettings(models={"colors": str(ss.text_pipeline()),
                                      "numbers": str(ss.numeric_model())},
                              token_file=str(ss.workdir() / "token"), max_items=20,
                              max_body=256 * 1024)
    app = create_app(settings_, load_in_background=False)
    app.state.registry.load_all()  # the ASGI transport runs no lifespan
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_api_conforms_to_its_spec(schema):
    operations = [result.ok() for result in schema.get_all_operations()]
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /v1/models/{name}/predict", "GET /v1/models/{name}/labels",
            "POST /v1/models/{name}/learn", "POST /v1/admin/models/{name}/reload",
            "GET /v1/models", "GET /health/ready", "GET /metrics"} <= names
    statuses: dict[str, set[int]] = {}
    for op in operations:
        _run(op, statuses.setdefault(f"{op.method.upper()} {op.path}", set()))
    # the generated requests did reach the routes (not only their validation)
    assert statuses["GET /v1/models"] == {200}
    assert 422 in statuses["POST /v1/models/{name}/predict"]
    assert 404 in statuses["GET /v1/models/{name}"] and 200 in statuses["GET /v1/models/{name}"]


def _run(op, seen: set[int]) -> None:
    """MAX_EXAMPLES generated requests to one operation, each checked against the spec."""

    @given(case=op.as_strategy(), model=st.sampled_from([None, "colors", "numbers"]))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case, model):
        if model is not None and case.path_parameters and "name" in case.path_parameters:
            case.path_parameters["name"] = model  # reach the served models, not only 404s
        response = case.call_and_validate(checks=CHECKS)
        seen.add(response.status_code)

    check()
