"""The JSON bodies the API's routes take, as pydantic models (the OpenAPI document names them).

Each refuses fields it does not know (`extra="forbid"`), so a typo is a 422 naming the field
rather than a request silently acted on without it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gitopsd.engine import selection
from gitopsd.model.state import reason_problem


class RunRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/runs."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["plan", "apply", "destroy"]
    components: list[str] | None = Field(default=None, min_length=1)
    revision: str | None = Field(default=None, min_length=1)
    plan: str | None = Field(default=None, min_length=1, description="a saved plan's id")

    @field_validator("components")
    @classmethod
    def _each_once(cls, names: list[str] | None) -> list[str] | None:
        """A name twice is a slip (or a body made to be stored large): said, not kept."""
        if twice := selection.named_twice(names or ()):
            raise ValueError(f"names {', '.join(twice)} more than once")
        return names


class NoFields(BaseModel):
    """The body of a route that takes no fields: none, `{}`, or 422. Read all the same, so a
    hostile body is refused as on any other route and the connection stays in step."""

    model_config = ConfigDict(extra="forbid")


class DriftRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/drift (optional: check, repair only what the
    manifest's `drift.remediate` asks for, which suspension holds)."""

    model_config = ConfigDict(extra="forbid")

    remediate: bool = Field(
        default=False,
        strict=True,
        description="repair the drift found, also while suspended (gitopsd drift --remediate)",
    )


class ApprovalRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/approvals (no revision: the pending one)."""

    model_config = ConfigDict(extra="forbid")

    revision: str | None = Field(default=None, min_length=1)


class PromotionRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/promotions (optional: the upstream's
    newest verified revision, no force)."""

    model_config = ConfigDict(extra="forbid")

    revision: str | None = Field(default=None, min_length=1)
    force: bool = Field(
        default=False, strict=True, description="override a change window (recorded)"
    )


class RollbackRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/rollbacks."""

    model_config = ConfigDict(extra="forbid")

    revision: str = Field(min_length=1, description="a revision the environment verified")


class SuspensionRequest(BaseModel):
    """The body of POST /api/v1/environments/{env}/suspension (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = ""

    @field_validator("reason")
    @classmethod
    def _one_line(cls, reason: str) -> str:
        """No line break, terminal escape or bidirectional override (model.state)."""
        problem = reason_problem(reason)
        if problem is not None:
            raise ValueError(problem)
        return reason
