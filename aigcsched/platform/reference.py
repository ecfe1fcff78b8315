"""A markdown reference of every configuration key, read from the pydantic models.

`python -m aigcsched.platform.reference` prints it; `--write` regenerates docs/config.md.
Nothing here names a key: sections, types, defaults and descriptions all come from the models, so the
reference follows the models as they change.
"""

from __future__ import annotations

import collections.abc
import enum
import importlib
import inspect
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "config.md"
REGENERATE = "python -m aigcsched.platform.reference --write"

_NONE_TYPE = type(None)
_COMPUTED = object()  # the default of a factory that reads the other keys
_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
_LENGTHS = (("min_length", "length >="), ("max_length", "length <="))


# --- values and types ---------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """A default as YAML would read it, inline: null, true, 1.5, [a, b], {k: v}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return format_value(value.value)
    if isinstance(value, BaseModel):
        return format_value(value.model_dump())
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return value if value.strip() and value == value.strip() else repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{format_value(k)}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return "[" + ", ".join(format_value(v) for v in items) + "]"
    return str(value)


def _is_model(tp: Any) -> bool:
    return inspect.isclass(tp) and issubclass(tp, BaseModel)


def _union_args(tp: Any) -> tuple | None:
    """The members of a Union / X | Y annotation, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def format_type(tp: Any) -> str:
    """int, float or null, [float, float], list of str, one of: a, b, ..."""
    tp = _strip_annotated(tp)
    if tp is _NONE_TYPE or tp is None:
        return "null"
    if tp is Any:
        return "any"
    members = _union_args(tp)
    if members is not None:
        return " or ".join(dict.fromkeys(format_type(m) for m in members))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "one of: " + ", ".join(format_value(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {format_type(args[0])}"
        return "[" + ", ".join(format_type(a) for a in args) + "]" if args else "list"
    if origin in (list, set, frozenset, collections.abc.Sequence):
        return f"list of {format_type(args[0])}" if args else "list"
    if origin is dict or tp is dict:
        return f"mapping of {format_type(args[0])} to {format_type(args[1])}" if args else "mapping"
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return "one of: " + ", ".join(format_value(m.value) for m in tp)
    if _is_model(tp):
        return "section"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _constraints(field: FieldInfo) -> str:
    """`>= 1`, `> 0, <= 1`, ... from the field's annotated_types metadata."""
    parts = []
    for meta in field.metadata:
        for attr, sign in _BOUNDS + _LENGTHS:
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{sign} {format_value(bound)}")
    return ", ".join(parts)


def field_type(field: FieldInfo) -> str:
    """The field's type and its bounds, e.g. `int, >= 1`."""
    text = format_type(field.annotation)
    bounds = _constraints(field)
    return f"{text}, {bounds}" if bounds else text


def field_default(field: FieldInfo) -> Any:
    """The default value (factories called), or PydanticUndefined for a required field."""
    if field.default_factory is not None:
        if getattr(field, "default_factory_takes_data", False):
            return _COMPUTED  # a factory of the other keys' values
        return field.default_factory()
    return field.default


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _cell(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`" if text else ""


def model_summary(model: type[BaseModel]) -> str:
    """The first paragraph of the model's own docstring, on one line ('' if it has none)."""
    doc = model.__dict__.get("__doc__")
    if not doc:
        return ""
    return _one_line(inspect.cleandoc(doc).split("\n\n")[0])


# --- the walker ---------------------------------------------------------------------------------


class Row(typing.NamedTuple):
    key: str
    type: str
    default: str  # markdown: `value`, maybe with a note
    description: str


class Section(typing.NamedTuple):
    """The keys of one model (or one member of a union of models) found under the dotted `path`."""

    path: str
    variant: str  # "kind: diffusion" for a member of a discriminated union, else ""
    summary: str
    rows: list[Row]


def _nested_models(tp: Any) -> list[type[BaseModel]] | None:
    """The model classes a field holds when it is a section (a model, optional or a union of models)."""
    tp = _strip_annotated(tp)
    if _is_model(tp):
        return [tp]
    members = _union_args(tp)
    if members is not None:
        stripped = [_strip_annotated(m) for m in members]
        models = [m for m in stripped if _is_model(m)]
        if models and all(_is_model(m) or m is _NONE_TYPE for m in stripped):
            return models
        # Optional[Annotated[Union[A, B], ...]]: the union sits one level down
        inner = [m for m in stripped if m is not _NONE_TYPE]
        if len(inner) == 1 and _union_args(inner[0]) is not None:
            return _nested_models(inner[0])
    return None


def _discriminator_name(field: FieldInfo, models: list[type[BaseModel]]) -> str | None:
    """The key that picks the member of a union of models: the field's string discriminator, else a
    key every member has as a Literal with values no other member shares (what a callable
    discriminator reads, in practice)."""
    if isinstance(field.discriminator, str):
        return field.discriminator
    metas = list(field.metadata)
    for member in _union_args(field.annotation) or ():
        if typing.get_origin(member) is typing.Annotated:
            metas.extend(typing.get_args(member)[1:])
    for meta in metas:
        disc = getattr(meta, "discriminator", None)
        if isinstance(disc, str):
            return disc
    for name in models[0].model_fields:
        values = [_literal_values(m, name) for m in models]
        if all(values) and sum(len(set(v)) for v in values) == len(set().union(*values)):
            return name
    return None


def _literal_values(model: type[BaseModel], name: str) -> list[Any]:
    field = model.model_fields.get(name)
    if field is None:
        return []
    tp = _strip_annotated(field.annotation)
    return list(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else []


def _discriminator_values(model: type[BaseModel], name: str) -> list[Any]:
    values = _literal_values(model, name)
    if values or name not in model.model_fields:
        return values
    default = field_default(model.model_fields[name])
    return [] if default is PydanticUndefined or default is _COMPUTED else [default]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def walk_model(model: type[BaseModel], prefix: str = "") -> list[Section]:
    """Every key of the pydantic model class `model`, as Sections: its plain fields are the rows of
    the first, each field holding a model gets its own Sections under its dotted path (recursively), and
    a union of models (discriminated or not) gets one per member, marked with its discriminator value."""
    return _walk(model, prefix, "", None)


def _walk(model: type[BaseModel], prefix: str, variant: str, instance: BaseModel | None) -> list[Section]:
    rows: list[Row] = []
    nested: list[Section] = []
    for name, field in model.model_fields.items():
        key = _join(prefix, name)
        default = field_default(field)
        # a default of the enclosing section (its factory's instance) may set this key differently
        actual = getattr(instance, name) if instance is not None else default
        models = _nested_models(field.annotation)
        if not models:
            text = _format_default(default)
            if instance is not None and (default is PydanticUndefined or actual != default):
                text = f"{text} ({_cell(format_value(actual))} when `{prefix}` is omitted)"
            rows.append(Row(key, field_type(field), text, _one_line(field.description)))
            continue
        disc = _discriminator_name(field, models) if len(models) > 1 else None
        optional = _NONE_TYPE in (_union_args(_strip_annotated(field.annotation)) or ())
        if len(models) > 1 or optional or default is PydanticUndefined:
            # a row for the section itself: what may go there, and its default
            what = "the section below" if len(models) == 1 else "one of the sections below"
            if disc:
                what += f", chosen by `{key}.{disc}`"
            description = _one_line(field.description)
            rows.append(
                Row(
                    key,
                    field_type(field),
                    _section_default(default, disc),
                    f"{description}; {what}" if description else what,
                )
            )
        for member in models:
            if disc:
                values = " or ".join(format_value(v) for v in _discriminator_values(member, disc))
                label = f"{disc}: {values}" if values else member.__name__
            else:
                label = member.__name__ if len(models) > 1 else ""
            sections = _walk(member, key, label, actual if isinstance(actual, member) else None)
            if sections and field.description and not (len(models) > 1 or optional):
                first = sections[0]
                summary = _one_line(field.description)
                sections[0] = first._replace(summary=f"{summary}. {first.summary}" if first.summary else summary)
            nested.extend(sections)
    own = [Section(prefix, variant, model_summary(model), rows)] if rows or not nested else []
    return own + nested


def _section_default(default: Any, disc: str | None) -> str:
    """The default of a field holding a section: which member, and the keys it sets otherwise than
    that member's defaults (a whole dump of the section would repeat the tables below)."""
    if not isinstance(default, BaseModel):
        return _format_default(default)
    cls = type(default)
    changed = {
        name: value for name, value in default if name != disc and field_default(cls.model_fields[name]) != value
    }
    which = f"`{disc}: {format_value(getattr(default, disc))}`" if disc else "the section"
    return f"{which} with " + (_cell(format_value(changed)) if changed else "its defaults")


def _format_default(default: Any) -> str:
    """Markdown for a default: the value as code, `required` or `computed`."""
    if default is PydanticUndefined:
        return "required"
    if default is _COMPUTED:
        return "computed from the other keys"
    return _cell(format_value(default))


def render_sections(sections: list[Section], level: int = 3, top_title: str = "Top level") -> str:
    """Markdown: a heading and a table per Section. A section at the root path is headed `top_title`,
    or has no heading when that is empty."""
    out = []
    for section in sections:
        heading = f"`{section.path}`" if section.path else top_title
        if section.variant:
            heading = f"{heading} ({section.variant})"
        if heading:
            out.extend([f"{'#' * level} {heading}", ""])
        if section.summary:
            out.extend([section.summary, ""])
        out.append("| key | type | default | description |")
        out.append("|---|---|---|---|")
        for row in section.rows:
            out.append(f"| `{row.key}` | {_cell(row.type)} | {row.default} | {row.description} |")
        out.append("")
    return "\n".join(out)


def document_model(model: type[BaseModel], prefix: str = "", level: int = 3, top_title: str = "Top level") -> str:
    """The markdown reference of one pydantic model class: every key, recursively."""
    return render_sections(walk_model(model, prefix), level, top_title)


# --- the project's configs -------------------------------------------------------------------------


def problems() -> list[tuple[str, str | None, type[BaseModel]]]:
    """(problem name, env id or None, scenario config class) of each problem, in the platform's order.

    The platform's `PROBLEMS` maps names to `Problem` descriptors (with `config_class`); the envs'
    older table maps names to (env id, config class): both are read."""
    envs_table = getattr(importlib.import_module("aigcsched.envs"), "PROBLEMS", {})
    try:
        table = importlib.import_module("aigcsched.platform.problems").PROBLEMS
    except (ImportError, AttributeError):
        table = envs_table
    out = []
    for name, entry in table.items():
        if isinstance(entry, tuple | list):
            config = next((p for p in entry if _is_model(p)), None)
            env_id = next((p for p in entry if isinstance(p, str)), None)
        else:
            config = getattr(entry, "config_class", None)
            env_id = getattr(entry, "env_id", None)
        if env_id is None and isinstance(envs_table.get(name), tuple | list):
            env_id = next((p for p in envs_table[name] if isinstance(p, str)), None)
        if not _is_model(config):
            raise TypeError(f"problem {name!r}: no pydantic config class in {entry!r}")
        out.append((name, env_id, config))
    return out


def _experiment_config() -> type[BaseModel]:
    from aigcsched.platform.config import ExperimentConfig

    return ExperimentConfig


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def config_reference() -> str:
    """docs/config.md: the experiment config's keys, then each problem's scenario keys."""
    experiment = _experiment_config()
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated from the pydantic models by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "Every key, its type, its default and what it does. Values are as YAML reads them: a list is `[a, b]`, "
        "`null` is unset.",
        "",
        "## Experiment config",
        "",
        "The YAML file that `aigcsched train`, `aigcsched submit` and each variant of `aigcsched study` take "
        f"(`{_qualname(experiment)}`; `configs/*.yaml` are examples). Override any key on the command line "
        "with its dotted name, `--set algorithm.lr=0.0005`; an unknown key or a wrong type is an error "
        "naming the key. The problem's scenario goes under `env.config`, with the keys of "
        "[Scenario configs](#scenario-configs).",
        "",
        render_sections(walk_model(experiment), level=3),
        "## Scenario configs",
        "",
        "The keys of each problem's scenario: `env.config.KEY` in an experiment config (`--set "
        "env.config.KEY=VALUE` on the command line), `--set KEY=VALUE` for `aigcsched evaluate` and "
        "`aigcsched reproduce`, and keyword arguments of the env in Python.",
        "",
    ]
    for name, env_id, config in problems():
        sections = walk_model(config)
        where = f"`{env_id}`, `{_qualname(config)}`" if env_id else f"`{_qualname(config)}`"
        if sections and not sections[0].path:
            summary = sections[0].summary
            sections[0] = sections[0]._replace(summary=f"{summary} ({where})" if summary else f"({where})")
        lines.extend([f"### `{name}`", "", render_sections(sections, level=4, top_title="")])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    unknown = [a for a in args if a != "--write"]
    if unknown:
        print(
            f"error: unknown argument(s) {' '.join(unknown)}; usage: {REGENERATE.removesuffix(' --write')} [--write]",
            file=sys.stderr,
        )
        return 2
    text = config_reference()
    if "--write" in args:
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
