"""make incident: a postmortem document from an openai-outage replay, charts linked relative to the document.

The replay runs at a fifth of the scenario's length to stay cheap; the document's structure is what is checked.
"""

from __future__ import annotations

import re
from pathlib import Path

from experiments.incident import generate

SECTIONS = (
    "# Postmortem: openai-outage",
    "## Summary",
    "## Impact",
    "## Root cause and trigger",
    "## Detection",
    "## Resolution",
    "## Timeline (run seconds)",
    "### What went well",
    "### What went wrong",
    "### Where we got lucky",
    "## Action items",
    "## Supporting information",
)


def test_incident_with_charts_links_every_png_relative_to_the_document(tmp_path: Path) -> None:
    out = generate(tmp_path / "docs" / "INCIDENT.md", tmp_path / "docs" / "incident", scale=0.2)
    text = out.read_text()
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "make incident" in text and "seed 7" in text and "at time scale 0.2" in text
    links = re.findall(r"!\[[a-z]+\]\(([^)]+)\)", text)
    assert links == [f"incident/{n}.png" for n in ("traffic", "latency", "providers", "breakers", "budget")]
    for link in links:
        assert (out.parent / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "`openai` breaker closed -> open" in text
    assert "fault starts: outage:503 on `openai`" in text


def test_incident_without_charts_writes_no_images(tmp_path: Path) -> None:
    out = generate(tmp_path / "INCIDENT.md", tmp_path / "charts", scale=0.2, charts=False)
    text = out.read_text()
    assert "![" not in text and not (tmp_path / "charts").exists()
    assert "## Action items" in text
