"""schemathesis against the service's own OpenAPI schema, in process (ASGI, no network): every operation, in
single-user mode and with an admin and a reader key. No response may be a 5xx, and every response must be one the
schema declares (status, content type, headers, body). A failure prints the request that reproduces it.

The services are real (create_app: Valkey, SQLite, Qdrant Edge, MiniLM); schemathesis runs the app's lifespan on
its own event loop thread. The run is bounded and repeatable: FUZZ_CONFIG fixes the seed and the examples per
operation. Limits are set low so that generated texts stay cheap to embed and score, and so that the schema's
limits (which follow the settings) are reached by the generator. About 4,500 requests in 77 tests (26 operations
with each key, 25 in single-user mode); 2 to 3 1/2 minutes on 2 shared cores, the two services' start-up included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from schemathesis.python import asgi

from kernel.settings import Settings, load_settings
from rag.api.app import create_app
from rag.api.schema import openapi_schema

pytestmark = pytest.mark.slow

FUZZ_CONFIG = """
seed = 20261203
suppress-health-check = ["all"]

[generation]
max-examples = 12
# No example database: each run generates the same cases from the seed, whatever ran before.
database = "none"
# Generated header values must survive the trip through latin-1, like any header on the wire.
exclude-header-characters = "\\r\\n"

[phases.examples]
enabled = true
[phases.coverage]
enabled = true
[phases.fuzzing]
enabled = true
[phases.stateful]
enabled = false

[checks]
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
response_headers_conformance.enabled = true
negative_data_rejection.enabled = true
unsupported_method.enabled = true
allow_header_conformance.enabled = true
# Random names and ids rightly get 404: a valid request need not succeed.
positive_data_acceptance.enabled = false
"""

# Small enough that examples at the limits stay cheap; the schema states these very values.
SETTINGS: dict[str, Any] = {
    "scoring": {"max_text_chars": 400, "max_contexts": 3, "evaluate_max_items": 2, "enabled": False},
    "answer": {"max_question_chars": 300},
    "retrieval": {"max_top_k": 20},
    "ingestion": {"max_files_per_request": 3, "max_upload_bytes": 20_000},
    # The rate limiter runs on every request, with room for the whole run.
    "limits": {"rate": "100000/hour", "max_json_bytes": 64 * 1024},
}
RECORDS = [
    {"id": "bridge", "text": "The Golden Gate Bridge opened in 1937. Its main span is 1,280 metres long."},
    {"id": "tower", "text": "The Eiffel Tower was completed in 1889. It is 330 metres tall."},
]


def _settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, **SETTINGS)


# The schema is the app's own, with the limits of SETTINGS in it; it needs no running service, so it is loaded
# when the module is (schemathesis makes one test per operation from it). The apps the requests go to are the
# fixtures below, made the same way.
_schema_app = create_app(_settings(Path("unused")))


def _schema(*, keyed: bool) -> Any:
    raw = openapi_schema(_schema_app, _settings(Path("unused")), keyed=keyed)
    return schemathesis.openapi.from_dict(raw, config=schemathesis.Config.from_str(FUZZ_CONFIG))


# A key made in single-user mode ends it (the first key is made that way): the keyed runs make keys instead.
OPEN = _schema(keyed=False).exclude(method="POST", path="/v1/keys")
KEYED = _schema(keyed=True)


# The import body is JSON lines: generated as text, sent as it is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


@pytest.fixture(scope="module")
def lifespans() -> Iterator[None]:
    """schemathesis's pytest plugin ends every ASGI app's lifespan after each test; here the services would then be
    rebuilt (Valkey, models, worker) for each of the ~80 operation tests. They live for the module instead."""
    end_all = asgi.shutdown_lifespans
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asgi, "shutdown_lifespans", lambda: None)
        yield
    end_all()  # every app schemathesis started: its services close, its Valkey stops


@pytest.fixture(scope="module")
def open_app(lifespans: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Single-user mode: no key exists, requests carry none."""
    app = create_app(_settings(tmp_path_factory.mktemp("fuzz-open")))
    with asgi.get_client(cast(Any, app)) as client:  # FastAPI is an ASGI app; the stub wants a plain callable
        _seed(client, {})
    return app


@dataclass
class Keyed:
    app: Any
    admin: dict[str, str]
    reader: dict[str, str]


@pytest.fixture(scope="module")
def keyed(lifespans: None, tmp_path_factory: pytest.TempPathFactory) -> Keyed:
    """Keys exist: an admin of every collection and a reader of "handbook"."""
    app = create_app(_settings(tmp_path_factory.mktemp("fuzz-keyed")))
    with asgi.get_client(cast(Any, app)) as client:  # FastAPI is an ASGI app; the stub wants a plain callable
        made = client.post("/v1/keys", json={"role": "admin", "collections": ["*"]})
        assert made.status_code == 201, made.text
        admin = {"Authorization": f"Bearer {made.json()['key']}"}
        _seed(client, admin)
        made = client.post("/v1/keys", json={"role": "reader", "collections": ["handbook"]}, headers=admin)
        assert made.status_code == 201, made.text
        reader = {"Authorization": f"Bearer {made.json()['key']}"}
    return Keyed(app, admin, reader)


def _seed(client: Any, headers: dict[str, str]) -> None:
    """The collection the schema's examples name, with indexed text: the examples phase then reaches retrieval,
    answers and scoring with valid requests, and the fuzzing phase varies them."""
    assert client.post("/v1/collections", json={"name": "handbook"}, headers=headers).status_code == 201
    body = "\n".join(json.dumps(r) for r in RECORDS)
    job = client.post("/v1/collections/handbook/documents/import", data=body, headers=headers)
    assert job.status_code == 202, job.text
    for _ in range(6000):  # a guard against a hang, not a speed requirement
        status = client.get(f"/v1/jobs/{job.json()['job_id']}", headers=headers).json()["status"]
        if status in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert status == "succeeded"


def _call(case: schemathesis.Case, app: Any, headers: dict[str, str] | None = None) -> None:
    # The schema was loaded from a dict: this tells it (and the checks that send probes of their own, such as the
    # request without a key) which app to reach in process.
    case.operation.app = case.operation.schema.app = app
    case.call_and_validate(headers=headers)


@OPEN.parametrize()
def test_single_user_mode(case: schemathesis.Case, open_app: Any) -> None:
    _call(case, open_app)


@KEYED.parametrize()
def test_with_an_admin_key(case: schemathesis.Case, keyed: Keyed) -> None:
    _call(case, keyed.app, keyed.admin)


@KEYED.parametrize()
def test_with_a_reader_key(case: schemathesis.Case, keyed: Keyed) -> None:
    _call(case, keyed.app, keyed.reader)
