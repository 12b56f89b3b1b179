"""Loading and validating the pipeline configuration.

The JSON schema (``codyn/schemas/config.schema.yaml``) checks types and fills
defaults; :func:`check_references` then checks what a schema cannot: that every
name used in a list or a router refers to a defined dataset or model. Both raise
:class:`~codyn.errors.ConfigError` naming the key and the allowed values.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from codyn import validate
from codyn.errors import ConfigError
from codyn.routers.params import param_problems

SCHEMA_RESOURCE = "schemas/config.schema.yaml"


def schema_path() -> Path:
    return Path(str(resources.files("codyn").joinpath(SCHEMA_RESOURCE)))


@functools.cache
def _schema() -> dict:
    """The schema, parsed once per process; private, so no caller can change it for others."""
    try:
        with open(schema_path(), encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except OSError as exc:  # an install that left the package data out
        raise ConfigError(
            "<root>", f"cannot read the config schema {schema_path()}: {exc.strerror or exc}"
        ) from None


def load_schema() -> dict:
    """A copy of the schema (parsed once): edit it freely, the next caller sees the original."""
    return copy.deepcopy(_schema())


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The schema's validator that also fills defaults, built once."""
    return _fill_defaults(jsonschema.Draft202012Validator)(_schema())


@functools.cache
def _section_defaults(section: str) -> dict:
    spec = _schema()
    for i, part in enumerate(section.split(".")):
        props = spec.get("properties", {})
        if part not in props:
            where = ".".join(section.split(".")[:i]) or "<root>"
            raise ConfigError(section, f"no such config section in {where}", allowed=sorted(props))
        spec = props[part]
    filled: dict = {}
    # The one default-filling validator, on an empty section: nested defaults follow, and
    # evolve keeps the root schema for "#/definitions/..." references. Errors (a required
    # key) are the caller's to check on the real section.
    for _ in _validator().evolve(schema=spec).iter_errors(filled):
        pass
    return filled


def section_defaults(section: str) -> dict:
    """A config section (``scoring``, ``serve``, ``serve.cascade``, ...) as the schema's
    defaults fill it where a config gives it empty; a fresh copy per call."""
    return copy.deepcopy(_section_defaults(section))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error:
    plain YAML keeps the last one, so ``cost: 1`` ... ``cost: 0`` would pass silently."""


def _mapping_without_duplicates(loader, node, deep=False):
    loader.flatten_mapping(node)
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # SafeLoader's own error follows
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found key {key!r} twice (first {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def read_yaml(path: str | Path):
    """A YAML file's content; a malformed file or a key given twice is a ConfigError
    naming the file, line and column."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError("<root>", f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "<root>", f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError("<root>", f"cannot read {path}: {exc.strerror or exc}") from None


def deep_merge(base: dict, override: dict) -> dict:
    """Merge like Snakemake's ``--configfile``: dicts recursively, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<root>"


def _error_to_config_error(error: jsonschema.ValidationError) -> ConfigError:
    key = _key_path(error)
    validator = error.validator
    if validator == "enum":
        return ConfigError(key, f"{error.instance!r} is not allowed", allowed=error.validator_value)
    if validator == "additionalProperties":
        props = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(props)) if isinstance(error.instance, dict) else []
        bad = ".".join(filter(None, [key if key != "<root>" else "", extra[0] if extra else ""]))
        return ConfigError(bad or key, "unknown key", allowed=props or None)
    if validator == "type":
        return ConfigError(key, f"{error.instance!r} is not of type {error.validator_value}")
    if validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return ConfigError(key, f"{error.instance!r} violates {validator} {error.validator_value}")
    if validator == "required":
        return ConfigError(key, error.message)
    if validator == "pattern":
        return ConfigError(key, f"{error.instance!r} must match {error.validator_value}")
    return ConfigError(key, error.message)


def _fill_defaults(validator_cls):
    """A validator that also sets schema defaults (as snakemake.utils.validate does)."""
    validate_properties = validator_cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    def set_defaults_additional(validator, additional, instance, schema):
        if isinstance(instance, dict) and isinstance(additional, dict):
            known = set(schema.get("properties", {}))
            for key, value in instance.items():
                if key in known or not isinstance(value, dict):
                    continue
                for prop, sub in additional.get("properties", {}).items():
                    if "default" in sub and prop not in value:
                        value[prop] = copy.deepcopy(sub["default"])
        yield from validator_cls.VALIDATORS["additionalProperties"](
            validator, additional, instance, schema
        )

    return jsonschema.validators.extend(
        validator_cls,
        {"properties": set_defaults, "additionalProperties": set_defaults_additional},
    )


def validate_config(config: dict) -> dict:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises :class:`ConfigError` on the first problem, most specific first.
    """
    errors = sorted(_validator().iter_errors(config), key=lambda e: -len(list(e.absolute_path)))
    if errors:
        raise _error_to_config_error(errors[0])
    check_values(config)
    check_references(config)
    return config


def check_values(config: dict) -> None:
    """The rules of codyn.validate a JSON schema cannot state: finite numbers, costs with
    one > 0, and each router's parameters against its own type's schema."""
    validate.finite_everywhere(config, validate.Where(key=""))
    costs = {
        m: validate.cost(config["models"][m]["cost"], validate.Where(key=f"models.{m}.cost"))
        for m in config["portfolio"]
        if m in config["models"]
    }
    validate.costs(costs, validate.Where(key="models.*.cost"))
    for name, spec in config.get("routers", {}).items():
        problems = param_problems(spec["type"], spec)
        if problems:
            param, message = problems[0]
            raise ConfigError(f"routers.{name}.{param}", message)


def check_references(config: dict) -> None:
    datasets = set(config["datasets"])
    models = set(config["models"])
    routers = set(config.get("routers", {}))
    for key in ("run_datasets", "generalisation", "train_datasets"):
        for i, name in enumerate(config.get(key) or []):
            if name not in datasets:
                raise ConfigError(f"{key}[{i}]", f"unknown dataset {name!r}", allowed=datasets)
    for i, name in enumerate(config["portfolio"]):
        if name not in models:
            raise ConfigError(f"portfolio[{i}]", f"unknown model {name!r}", allowed=models)
    if len(set(config["portfolio"])) != len(config["portfolio"]):
        raise ConfigError("portfolio", "a model is listed twice")
    for i, name in enumerate(config.get("run_routers") or []):
        if name not in routers:
            raise ConfigError(f"run_routers[{i}]", f"unknown router {name!r}", allowed=routers)
    portfolio = set(config["portfolio"])
    # Only routers this run trains: a config that swaps the portfolio keeps the default's
    # router catalogue (dicts merge), whose pairs name models it no longer has.
    run_routers = set(config.get("run_routers") or [])
    for rname, spec in config.get("routers", {}).items():
        if rname not in run_routers:
            continue
        for key in ("pair", "candidates"):
            names = spec.get(key)
            for i, model in enumerate(names if isinstance(names, list) else []):
                if model not in portfolio:
                    raise ConfigError(
                        f"routers.{rname}.{key}[{i}]",
                        f"unknown model {model!r}",
                        allowed=portfolio,
                    )
    for name in config["generalisation"]:
        if name in (config.get("train_datasets") or []):
            raise ConfigError("generalisation", f"{name!r} is also in train_datasets")


def load_config(*paths: str | Path, overrides: dict | None = None) -> dict:
    """Load YAML files in order (later ones merged over earlier), validate and return."""
    config: dict[str, Any] = {}
    for path in paths:
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError("<root>", f"{path} does not hold a mapping")
        config = deep_merge(config, data)
    if overrides:
        config = deep_merge(config, overrides)
    return validate_config(config)


def train_datasets(config: dict) -> list[str]:
    """Datasets routers train on: explicit list, else run_datasets minus generalisation."""
    if config.get("train_datasets"):
        return list(config["train_datasets"])
    held_out = set(config.get("generalisation") or [])
    return [d for d in config["run_datasets"] if d not in held_out]


def relative_costs(config: dict) -> dict[str, float]:
    return {m: float(config["models"][m]["cost"]) for m in config["portfolio"]}


def answers_kind(config: dict) -> str:
    """Where the portfolio's answers come from: simulated, replayed (published answers
    re-scored here), imported (published scores), generated (asked live), or mixed."""
    backends = {config["models"][m]["backend"] for m in config["portfolio"]}
    if "simulated" in backends:
        return "simulated" if backends == {"simulated"} else "mixed"
    if backends == {"replay"}:
        return "replayed"
    if backends == {"import"}:
        return "imported"
    return "generated" if not backends & {"replay", "import"} else "mixed"


def is_simulated(config: dict) -> bool:
    """True when any portfolio model's answers are synthetic."""
    return any(config["models"][m]["backend"] == "simulated" for m in config["portfolio"])
