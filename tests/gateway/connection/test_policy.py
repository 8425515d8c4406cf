"""The pure parts of the connection limits: the settings and their validation, the replies as bytes, the head's
size, and the app publishing its policy (with its counter) in the lifespan state."""

from __future__ import annotations

import fakeredis
import orjson
import pytest
from prometheus_client import generate_latest

from gateway.app import create_app
from gateway.config import ConfigError
from gateway.connection.policy import REASONS, STATE_KEY, ConnectionPolicy, RawReply, head_size
from gateway.errors import HeaderFieldsTooLarge
from gateway.settings.connection import ConnectionLimits
from tests.gateway.conftest import make_settings


def test_the_limits_live_under_server_limits_with_production_defaults() -> None:
    limits = make_settings(server={"limits": {"header_timeout_s": 0.5, "max_connections": 8}}).server.limits
    assert (limits.header_timeout_s, limits.max_connections) == (0.5, 8)
    defaults = make_settings().server.limits
    assert defaults == ConnectionLimits()
    assert (defaults.header_timeout_s, defaults.body_timeout_s, defaults.keep_alive_timeout_s) == (10.0, 30.0, 5.0)
    assert (defaults.max_header_count, defaults.max_header_bytes, defaults.max_connections) == (100, 32_768, 4096)
    assert defaults.max_requests_per_connection == 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("header_timeout_s", 0),
        ("body_timeout_s", -1),
        ("keep_alive_timeout_s", 0),
        ("max_requests_per_connection", 0),
        ("max_header_count", 2),
        ("max_header_bytes", 100),
        ("max_connections", 0),
        ("no_such_limit", 1),
    ],
)
def test_a_limit_that_cannot_work_is_refused_at_start_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"server\.limits\.{field}"):
        make_settings(server={"limits": {field: value}})


def test_a_raw_reply_is_one_whole_http_response_with_the_openai_error_body() -> None:
    error = HeaderFieldsTooLarge("too large", headers={"retry-after": "2"})
    raw = RawReply.of(error).render([(b"date", b"Thu, 03 Dec 2026 18:00:00 GMT")])
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert lines[1:] == [
        b"date: Thu, 03 Dec 2026 18:00:00 GMT",
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        b"retry-after: 2",
    ]
    assert orjson.loads(body) == {
        "error": {
            "message": "too large",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_header_fields_too_large",
        }
    }


def test_the_policy_messages_name_the_configured_limits() -> None:
    policy = ConnectionPolicy.build(ConnectionLimits(header_timeout_s=2.5, max_header_count=12, max_header_bytes=2000))
    assert b"within 2.5 s" in policy.head_timed_out.rest
    assert b"at most 12 fields and 2000 bytes" in policy.head_too_large.rest
    assert b"retry-after: 1\r\n" in policy.overloaded.rest


def test_the_head_size_is_the_target_and_every_name_and_value() -> None:
    assert head_size(b"/v1/models?a=1", [(b"host", b"gw"), (b"x-a", b"")]) == 14 + 6 + 3


async def test_the_app_publishes_its_policy_in_the_lifespan_state_counting_into_its_metrics() -> None:
    settings = make_settings(server={"metrics_port": 0, "limits": {"max_connections": 9}})
    app = create_app(settings, state=fakeredis.FakeAsyncRedis())
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        policy = state[STATE_KEY]
        assert isinstance(policy, ConnectionPolicy) and policy.limits.max_connections == 9
        for reason in REASONS:
            policy.closed(reason)
        policy.closed("header_timeout")
    text = generate_latest(app.state.runtime.telemetry.metrics.registry).decode()
    assert 'faultline_client_connections_closed_total{reason="header_timeout"} 2.0' in text
    assert 'faultline_client_connections_closed_total{reason="over_capacity"} 1.0' in text
