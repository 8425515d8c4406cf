"""Generate deploy/prometheus/slo-rules.yaml: Sloth-named SLO recording rules and multi-window multi-burn-rate
alerts for Faultline's availability and latency SLOs.

    python deploy/prometheus/generate_rules.py          # rewrite the file
    python deploy/prometheus/generate_rules.py --check  # exit 1 when the file is stale (tests/deploy runs this)

Burn rate = error ratio / (1 - objective). Alerts (SRE workbook, 30-day budget):
    page:   burn > 14.4 over 1h and 5m   (2 % of the budget in an hour)
            or burn > 6 over 6h and 30m  (5 % of the budget in six hours)
    ticket: burn > 1 over 3d and 6h      (10 % of the budget in three days)
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

SERVICE = "faultline"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
PERIOD = "30d"
CHAT = 'route="/v1/chat/completions"'

SLOS = [
    {
        "slo": "availability",
        "objective": 0.995,
        "description": "99.5 % of chat completions are answered without a 5xx (sheds and upstream failures count).",
        "errors": f'sum(rate(faultline_requests_total{{{CHAT},status=~"5.."}}[WINDOW]))',
        "total": f"sum(rate(faultline_requests_total{{{CHAT}}}[WINDOW]))",
    },
    {
        "slo": "latency",
        "objective": 0.99,
        "description": "99 % of successful chat completions deliver their first byte within 2.5 s.",
        "errors": (
            "(sum(rate(faultline_time_to_first_token_seconds_count[WINDOW]))"
            ' - sum(rate(faultline_time_to_first_token_seconds_bucket{le="2.5"}[WINDOW])))'
        ),
        "total": "sum(rate(faultline_time_to_first_token_seconds_count[WINDOW]))",
    },
]

# (severity, [(burn factor, long window, short window), ...]); any pair firing fires the alert.
ALERTS = [
    ("page", [(14.4, "1h", "5m"), (6.0, "6h", "30m")]),
    ("ticket", [(1.0, "3d", "6h")]),
]


def _labels(slo: dict[str, object]) -> dict[str, str]:
    return {"sloth_id": f"{SERVICE}-{slo['slo']}", "sloth_service": SERVICE, "sloth_slo": str(slo["slo"])}


def _sel(slo: dict[str, object]) -> str:
    return f'{{sloth_id="{SERVICE}-{slo["slo"]}", sloth_service="{SERVICE}", sloth_slo="{slo["slo"]}"}}'


def sli_rules(slo: dict[str, object]) -> list[dict[str, object]]:
    rules: list[dict[str, object]] = []
    for w in WINDOWS:
        errors = str(slo["errors"]).replace("WINDOW", w)
        total = str(slo["total"]).replace("WINDOW", w)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{w}",
                "expr": f"({errors})\n/\n({total})\n",
                "labels": {**_labels(slo), "sloth_window": w},
            }
        )
    sel = _sel(slo)
    rules.append(
        {
            "record": f"slo:sli_error:ratio_rate{PERIOD}",
            "expr": (
                f"sum_over_time(slo:sli_error:ratio_rate5m{sel}[{PERIOD}])\n"
                f"/ ignoring (sloth_window)\ncount_over_time(slo:sli_error:ratio_rate5m{sel}[{PERIOD}])\n"
            ),
            "labels": {**_labels(slo), "sloth_window": PERIOD},
        }
    )
    return rules


def meta_rules(slo: dict[str, object]) -> list[dict[str, object]]:
    sel, labels, objective = _sel(slo), _labels(slo), float(str(slo["objective"]))
    on = "on (sloth_id, sloth_slo, sloth_service) group_left"
    return [
        {"record": "slo:objective:ratio", "expr": f"vector({objective})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector(1 - {objective})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({int(PERIOD[:-1])})", "labels": labels},
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate5m{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n",
            "labels": labels,
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate{PERIOD}{sel}\n/ {on}\nslo:error_budget:ratio{sel}\n",
            "labels": labels,
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{sel}",
            "labels": labels,
        },
        {
            "record": "sloth_slo_info",
            "expr": "vector(1)",
            "labels": {**labels, "sloth_objective": str(objective * 100).rstrip("0").rstrip(".")},
        },
    ]


def alert_rules(slo: dict[str, object]) -> list[dict[str, object]]:
    sel, objective = _sel(slo), float(str(slo["objective"]))
    budget = round(1 - objective, 10)
    name = f"Faultline{str(slo['slo']).capitalize()}BudgetBurn"
    rules: list[dict[str, object]] = []
    for severity, pairs in ALERTS:
        clauses = [
            f"(\n  (slo:sli_error:ratio_rate{short}{sel} > ({factor} * {budget}))\n"
            f"  and ignoring (sloth_window)\n"
            f"  (slo:sli_error:ratio_rate{long}{sel} > ({factor} * {budget}))\n)"
            for factor, long, short in pairs
        ]
        windows = ", ".join(f"{f}x over {lg} and {sh}" for f, lg, sh in pairs)
        rules.append(
            {
                "alert": f"{name}{severity.capitalize()}",
                "expr": "\nor ignoring (sloth_window)\n".join(clauses) + "\n",
                "labels": {"severity": severity, "sloth_service": SERVICE, "sloth_slo": str(slo["slo"])},
                "annotations": {
                    "summary": f"{SERVICE} {slo['slo']} SLO is burning its error budget ({severity})",
                    "description": f"{slo['description']} Burn rate above {windows}.",
                    "runbook": "docs/OBSERVABILITY.md#slo-alerts",
                },
            }
        )
    return rules


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the PromQL expressions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)


def render() -> str:
    groups = []
    for slo in SLOS:
        name = f"{SERVICE}-{slo['slo']}"
        groups.append({"name": f"sloth-slo-sli-recordings-{name}", "rules": sli_rules(slo)})
        groups.append({"name": f"sloth-slo-meta-recordings-{name}", "rules": meta_rules(slo)})
        groups.append({"name": f"sloth-slo-alerts-{name}", "rules": alert_rules(slo)})
    header = "# Generated by deploy/prometheus/generate_rules.py; edit that file, not this one.\n"
    return header + yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=1000)


def main(argv: list[str]) -> int:
    target = Path(__file__).with_name("slo-rules.yaml")
    text = render()
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
