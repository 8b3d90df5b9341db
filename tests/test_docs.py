"""The README's configuration reference names every key the settings accept."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from aggregator import Settings
from aggregator._settings import DeclaredWorkflow, ParticipantSettings

README = (Path(__file__).parents[1] / "README.md").read_text()


def keys(model: type[BaseModel], prefix: str) -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += keys(annotation, f"{prefix}{name}.")
        else:
            found.append(prefix + name)
    return found


def test_every_setting_is_in_the_configuration_reference() -> None:
    documented = [
        *keys(Settings, ""),
        *keys(ParticipantSettings, "participants.<name>."),
        *(f"workflows.<name>.{k}" for k in ("rules", "anomalies", "fallback", "final")),
        "workflows.<name>.participants.<p>.states",
        "workflows.<name>.participants.<p>.terminal",
    ]
    for key in documented:
        if key in ("participants", "workflows"):
            continue
        assert f"| `{key}` |" in README, key
    assert set(DeclaredWorkflow.model_fields) == {
        "participants",
        "rules",
        "anomalies",
        "fallback",
        "final",
    }
