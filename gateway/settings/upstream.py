"""An active health check of one provider: which URL, how often, how long to wait."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HealthCheck(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        default="models",
        description="GET this: relative to the provider's base_url (models: OpenAI's and vLLM's model list, "
        "Gemini's models list), or from the URL's origin when it starts with / (vLLM's /health)",
    )
    interval_s: float = Field(default=10.0, gt=0, description="time between two checks")
    timeout_s: float = Field(default=2.0, gt=0, description="a check unanswered within this fails")
    unhealthy_after: int = Field(default=2, ge=1, description="consecutive failed checks before unhealthy")
