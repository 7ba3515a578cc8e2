"""The OpenAPI document tells the truth: a bounded schemathesis run against a real gateway.

Every check schemathesis has (status codes, content types, response schemas and headers, that
schema-valid requests are accepted and invalid ones refused with a 4xx, no 5xx) over every
operation except the two stream subscriptions, whose 200 answer is a body that never ends; their
error answers are held to the same error schema in tests/integration/test_bad_input.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def open_gateway(redis_server, tmp_path_factory):
    gateway = GatewayProcess(
        redis_server.url,
        log_path=tmp_path_factory.mktemp("openapi") / "gateway.log",
        env={"GATEWAY_AUTH": "off", "GATEWAY_CONSOLE": "true", "GATEWAY_LOG_LEVEL": "warning"},
    ).start()
    yield gateway
    gateway.stop()


def test_schema_documents_our_errors_and_media_types(open_gateway: GatewayProcess) -> None:
    schema = httpx.get(open_gateway.url + "/openapi.json").json()
    publish = schema["paths"]["/publish/{channel}"]["post"]
    assert set(publish["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert set(publish["responses"]) == {"202", "400", "401", "403", "408", "413", "415", "429",
                                         "503"}  # fmt: skip
    error = publish["responses"]["413"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorBody"}
    assert "Retry-After" in publish["responses"]["429"]["headers"]
    stream = schema["paths"]["/subscribe/{channel}"]["get"]["responses"]["200"]["content"]
    assert set(stream) == {"text/event-stream", "application/x-ndjson"}
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}
    for operator in (("/channels/{channel}", "get"), ("/disconnect", "post"),
                     ("/channels/{channel}/subscribers", "delete")):  # fmt: skip
        answers = schema["paths"][operator[0]][operator[1]]["responses"]
        assert answers["403"]["content"]["application/json"]["schema"] == error  # one ErrorBody
        assert "Retry-After" in answers["503"]["headers"]
    assert not any("422" in op["responses"] for path in schema["paths"].values()
                   for op in path.values())  # fmt: skip


def test_schemathesis_finds_no_failure(open_gateway: GatewayProcess, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS), "run", open_gateway.url + "/openapi.json",
        "--checks", "all",
        "--exclude-path-regex", "^/subscribe",
        "--max-examples", "25",  # per operation and phase: bounded, about 10-20 s here
        "--seed", "14",
        "--generation-database", "none",
        "--request-timeout", "5",
        "--workers", "2",
        "--no-color",
    ]  # fmt: skip
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout
