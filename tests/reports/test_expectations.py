"""Expectations: schema errors are readable; each evaluator holds or breaks with its figure."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import BaseModel

from reports.expectations import EVALUATORS, ExpectationError, parse_expectations
from reports.load import from_lines
from reports.summary import compute
from tests.reports.factory import T0, lines, outage_events, outage_run, outage_scenario


@pytest.fixture(scope="module")
def outage() -> list[dict[str, Any]]:
    return outage_run(rate=10, duration=180, seed=3)


def _results(records: list[dict[str, Any]], expectations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    run = from_lines(
        lines(records), lines(outage_events()), outage_scenario(expectations=expectations), {"started_at": T0}
    )
    return compute(run).summary["expectations"]


CASES: list[tuple[dict[str, Any], bool, float | None]] = [
    ({"kind": "breaker_opens_within", "provider": "openai", "after_s": 60, "within_s": 10}, True, 5.0),
    ({"kind": "breaker_opens_within", "provider": "openai", "after_s": 60, "within_s": 2}, False, 5.0),
    ({"kind": "breaker_opens_within", "provider": "vllm", "within_s": 10}, False, None),
    ({"kind": "breaker_stays_closed", "provider": "vllm"}, True, 0.0),
    ({"kind": "breaker_stays_closed", "provider": "openai"}, False, 1.0),
    ({"kind": "no_requests_while_breaker_open", "provider": "openai"}, True, 0.0),
    ({"kind": "min_breaker_transitions", "provider": "openai", "to": "half_open", "value": 1}, True, 1.0),
    ({"kind": "min_breaker_transitions", "provider": "openai", "to": "open", "value": 2}, False, 1.0),
    ({"kind": "outcome_count", "outcome": "error", "window": [60, 65], "min": 1}, True, None),
    ({"kind": "outcome_count", "outcome": "error", "max": 0}, False, None),
    ({"kind": "outcome_count", "outcome": "error", "window": [0, 60], "max": 0}, True, 0.0),
    ({"kind": "min_availability", "value": 0.999, "window": [0, 60]}, True, 1.0),
    ({"kind": "min_availability", "value": 0.99, "window": [60, 65]}, False, None),
    ({"kind": "min_availability", "value": 0.5, "consumer": "nobody"}, False, None),
    ({"kind": "max_ttft_p95_s", "value": 2.0}, True, None),
    ({"kind": "max_ttft_p95_s", "value": 0.5}, False, None),
    ({"kind": "max_latency_s", "metric": "e2e", "quantile": 0.5, "value": 10}, True, None),
    ({"kind": "min_failover_share", "value": 0.5, "window": [60, 120]}, True, None),
    ({"kind": "min_failover_share", "value": 0.5, "window": [0, 60]}, False, None),  # nothing needed failover
    ({"kind": "min_provider_share", "provider": "vllm", "value": 0.95, "window": [66, 120]}, True, 1.0),
    ({"kind": "min_provider_share", "provider": "vllm", "value": 0.9, "window": [0, 60]}, False, None),
    ({"kind": "max_upstream_calls_per_request", "value": 1.2}, True, None),
    ({"kind": "max_upstream_calls_per_request", "value": 1.0}, False, None),
    ({"kind": "max_error_budget_consumed", "value": 100}, True, None),
    ({"kind": "max_error_budget_consumed", "value": 0.01}, False, None),
    ({"kind": "max_spend_usd", "value": 10}, True, None),
    ({"kind": "max_spend_usd", "value": 0.5, "window": [0, 60]}, False, None),  # $0.001 a request, 10 a second
    ({"kind": "max_spend_usd", "value": 0, "consumer": "nobody"}, True, 0.0),
    ({"kind": "max_upstream_calls_per_logical_request", "value": 1.2}, True, None),
    ({"kind": "max_upstream_calls_per_logical_request", "value": 1.0}, False, None),
    ({"kind": "no_alert_fires"}, True, 0.0),
    ({"kind": "alert_fires_within", "within_s": 30}, False, None),
]


@pytest.mark.parametrize(("exp", "held", "figure"), CASES, ids=[f"{c[0]['kind']}-{i}" for i, c in enumerate(CASES)])
def test_expectation(outage: list[dict[str, Any]], exp: dict[str, Any], held: bool, figure: float | None) -> None:
    (result,) = _results(outage, [exp])
    assert result["held"] is held, result
    if figure is not None:
        assert result["figure"] == pytest.approx(figure)


def test_every_kind_has_an_evaluator_and_a_case() -> None:
    kinds = {get_args(m.model_fields["kind"].annotation)[0] for m in _models()}
    assert kinds == set(EVALUATORS)
    assert {c[0]["kind"] for c in CASES} >= kinds - {"max_e2e_p99_s"}


def _models() -> list[type[BaseModel]]:
    from reports import expectation_models as m

    return [v for v in vars(m).values() if isinstance(v, type) and "kind" in getattr(v, "model_fields", {})]


def test_alert_expectation_on_a_long_total_outage() -> None:
    # every request fails from t=60 on: the page alert fires within seconds of the fault
    recs = outage_run(rate=10, duration=180, seed=3)
    for r in recs:
        if r["ts_arrival"] - T0 >= 60:
            r["outcome"], r["provider"] = "error", None
    (res,) = _results(recs, [{"kind": "alert_fires_within", "within_s": 5}])
    assert res["held"] and 0 < res["figure"] < 5


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([{"kind": "nope"}], "does not match any of the expected tags"),
        ([{"kind": "min_availability", "value": 2}], r"expectations\[0\] \(min_availability\) value"),
        ([{"kind": "min_availability", "value": 0.9, "consumr": "x"}], "consumr: Extra inputs"),
        ([{"kind": "outcome_count", "outcome": "shed"}], "needs min, max or both"),
        ([{"kind": "min_failover_share", "value": 0.5, "window": [120, 60]}], "window must be"),
        ([{"value": 1}], "Unable to extract tag"),
    ],
)
def test_schema_errors_are_readable(raw: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ExpectationError, match=message):
        parse_expectations(raw)
