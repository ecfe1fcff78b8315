"""docs/config.md is generated from the pydantic models and documents every key."""

from typing import Annotated, Literal

from pydantic import BaseModel, Discriminator, Field, Tag

from aigcsched.platform.reference import DOC_PATH, REGENERATE, config_reference, document_model, problems, walk_model


def test_committed_reference_is_current():
    assert DOC_PATH.is_file(), f"{DOC_PATH} is missing: run `{REGENERATE}`"
    assert DOC_PATH.read_text() == config_reference(), f"docs/config.md is out of date: run `{REGENERATE}`"


class _Inner(BaseModel):
    depth: int = Field(3, ge=1, description="how deep")


class _Fast(BaseModel):
    kind: Literal["fast"] = "fast"
    speed: float = Field(2.5, description="how fast")


class _Slow(BaseModel):
    kind: Literal["slow"] = "slow"
    patience: tuple[int, int] = Field((1, 9), description="how patient")


class _Engine(BaseModel):
    name: Literal["jet"] = "jet"
    thrust: int = Field(5, description="how strong")


class _Sail(BaseModel):
    name: Literal["jib", "spinnaker"]
    area: float = Field(8.0, description="how large")


def _propulsion(value) -> str:
    name = value.get("name", "jet") if isinstance(value, dict) else value.name
    return "engine" if name == "jet" else "sail"


class _Tiny(BaseModel):
    seed: int = Field(0, description="the seed")
    inner: _Inner = Field(default_factory=lambda: _Inner(depth=7))
    mode: Annotated[_Fast | _Slow, Field(discriminator="kind")] = Field(default_factory=_Fast)
    # a callable discriminator: the members are told apart by their Literal `name`
    drive: Annotated[Annotated[_Engine, Tag("engine")] | Annotated[_Sail, Tag("sail")], Discriminator(_propulsion)] = (
        Field(default_factory=_Engine)
    )


def test_walker_documents_every_field_of_a_model():
    text = document_model(_Tiny)
    for key, default, description in [
        ("seed", "`0`", "the seed"),
        ("inner.depth", "`3` (`7` when `inner` is omitted)", "how deep"),
        ("mode.speed", "`2.5`", "how fast"),
        ("mode.patience", "`[1, 9]`", "how patient"),
        ("drive.thrust", "`5`", "how strong"),
        ("drive.area", "`8.0`", "how large"),
    ]:
        assert f"| `{key}` |" in text and f"| {default} | {description} |" in text, key
    assert "### `mode` (kind: fast)" in text and "### `mode` (kind: slow)" in text
    assert "### `drive` (name: jet)" in text and "### `drive` (name: jib or spinnaker)" in text
    assert "chosen by `drive.name`" in text

    class _Grown(_Tiny):
        added_later: str = Field("x", description="a key added to the model")

    assert "| `added_later` | `str` | `x` | a key added to the model |" in document_model(_Grown)
    keys = {row.key for section in walk_model(_Grown) for row in section.rows}
    assert {"seed", "added_later", "inner.depth", "mode.kind", "mode.speed", "mode.patience", "drive.area"} <= keys


def test_reference_covers_every_problem_and_experiment_section():
    text = config_reference()
    for name, _, config in problems():
        assert f"### `{name}`" in text
        for key in config.model_fields:
            assert f"| `{key}` |" in text, f"{name}.{key}"
    from aigcsched.platform.config import ExperimentConfig

    keys = {row.key for section in walk_model(ExperimentConfig) for row in section.rows}
    for key in keys:
        assert f"| `{key}` |" in text, key


def test_every_key_has_a_description():
    from aigcsched.platform.config import ExperimentConfig

    missing = {
        f"{name}.{key}"
        for name, _, config in problems()
        for key, field in config.model_fields.items()
        if not (field.description or "").strip()
    }
    missing |= {
        row.key for section in walk_model(ExperimentConfig) for row in section.rows if not row.description.strip()
    }
    assert not missing, f"keys without a description: {sorted(missing)}"
