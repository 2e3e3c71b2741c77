"""Lens models (DataOS Lens / Cube-like YAML): load, validate, resolve member references.

An entity has a `sql.query` (one SELECT over catalog tables), `fields` (columns of that query),
`dimensions` and `measures` (`sql_snippet`s) and `relationships` to other entities. Every member is
resolved at load time into an AST over its entity's columns, walking `${entity.member}` references
as a graph with cycle detection, so a model that loads compiles. Every error names the file, the
line, the entity and the member, and says what is wrong.

Reference rules:
- a dimension, a measure's own expression and a measure filter reference fields and dimensions of
  their own entity (or its declared columns by bare name);
- a `number` measure either aggregates its own entity's members (`count(${e.x}) / count(*)`), or
  combines measures of any entities (`100.0 * ${a.m} / ${b.n}`): a *derived* measure, computed
  after every measure has been aggregated at its own entity's grain.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from sqlglot import exp

from lens import sql
from lens.errors import LensError
from lens.query_format import Filter, FilterGroup, parse_filter

MEASURE_TYPES = ("count", "count_distinct", "count_distinct_approx", "sum", "avg", "min", "max", "number")
COUNT_TYPES = frozenset({"count", "count_distinct", "count_distinct_approx"})
VALUE_TYPES = ("string", "number", "date", "time", "boolean")
TYPE_ALIASES = {"timestamp": "time", "datetime": "time", "bool": "boolean", "int": "number", "double": "number"}
RELATIONSHIP_TYPES = ("1:N", "N:1", "1:1")
IDENTIFIER = re.compile(sql.NAME)
INVERSE = {"1:N": "N:1", "N:1": "1:N", "1:1": "1:1"}

MODEL_KEYS = ("name", "description", "contract", "owner", "tags", "entities", "dialect", "meta", "version")
ENTITY_KEYS = ("name", "description", "sql", "fields", "dimensions", "measures", "relationships", "tags", "meta")
SQL_KEYS = ("query", "columns", "verified", "tables", "description")
COLUMN_KEYS = ("name", "description", "type", "tags")
FIELD_KEYS = ("name", "type", "description", "column", "primary", "tags", "hidden", "meta")
DIMENSION_KEYS = ("name", "type", "description", "sql_snippet", "hidden", "tags", "meta")
MEASURE_KEYS = ("name", "type", "description", "sql_snippet", "hidden", "tags", "meta", "filters")
RELATIONSHIP_KEYS = ("type", "field", "target", "verified", "description")
TARGET_KEYS = ("name", "field")


# ----------------------------------------------------------------------------------------------
# YAML with line numbers
# ----------------------------------------------------------------------------------------------


class LineDict(dict):
    """A YAML mapping that remembers its line (1-based)."""

    line: int | None = None


class _LineLoader(yaml.SafeLoader):
    pass


# YAML 1.1 reads `1:1` as the base-60 integer 61; relationship types are text, so drop base 60.
_INT_TAG = "tag:yaml.org,2002:int"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode):
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    yield mapping
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise LensError(f"{loader.name}:{key_node.start_mark.line + 1}: key {key!r} appears twice "
                            f"in the mapping that starts at line {mapping.line}")
        seen[key] = key_node.start_mark.line
    mapping.update(loader.construct_mapping(node, deep=True))


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise LensError(f"model file {path}: cannot be read: {exc.strerror}") from None
    loader = _LineLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise LensError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    finally:
        loader.dispose()


# ----------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasureFilter:
    """A measure's own filter: a boolean snippet, or a structured filter on its entity's members."""

    snippet: sql.Snippet | None = None
    structured: Filter | FilterGroup | None = None


@dataclass(frozen=True)
class Member:
    entity: str
    name: str
    kind: str                     # field | dimension | measure
    type: str                     # value type (fields, dimensions) or aggregation (measures)
    line: int | None = None
    hidden: bool = False
    description: str = ""
    column: str | None = None     # fields
    primary: bool = False         # fields
    snippet: sql.Snippet | None = None
    filters: tuple[MeasureFilter, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.entity}.{self.name}"

    @property
    def label(self) -> str:
        return f"{self.kind} '{self.name}'"


@dataclass(frozen=True)
class Edge:
    """A join step from `source` to `target`; `fans_out` when one source row meets many targets."""

    source: str
    target: str
    source_member: str
    target_member: str
    cardinality: str              # from source to target

    @property
    def fans_out(self) -> bool:
        return self.cardinality == "1:N"


@dataclass
class Entity:
    name: str
    line: int | None
    query: exp.Query
    columns: tuple[str, ...]
    tables: tuple[str, ...]
    members: dict[str, Member] = field(default_factory=dict)

    def primary_key(self) -> list[Member]:
        return [m for m in self.members.values() if m.primary]


@dataclass
class Model:
    name: str
    source: str
    dialect: str
    entities: dict[str, Entity]
    edges: dict[str, list[Edge]]
    # entity.member -> resolved AST: dimension/field value, measure input (non-number) or whole
    # aggregate (number), or for derived measures an expression over Column("e.m") markers.
    expressions: dict[str, exp.Expression | None]
    derived: dict[str, tuple[str, ...]]  # derived measure -> the base measures it combines
    filter_expressions: dict[str, tuple[exp.Expression, ...]]  # measure -> resolved snippet filters

    def where(self, member: Member | None = None, entity: str | None = None) -> str:
        return _where(self.source, member.line if member else self.entities[entity].line if entity else None,
                      entity or (member.entity if member else None), member)

    def entity(self, name: str) -> Entity:
        if name not in self.entities:
            raise LensError(f"{self.source}: no entity {name!r}{_suggest(name, self.entities)}")
        return self.entities[name]

    def member(self, key: str) -> Member:
        entity_name, _, name = key.partition(".")
        entity = self.entity(entity_name)
        if name not in entity.members:
            raise LensError(f"{self.source}: entity '{entity_name}' has no member {name!r}"
                            f"{_suggest(name, entity.members)}")
        return entity.members[name]

    def expression(self, key: str) -> exp.Expression | None:
        value = self.expressions[key]
        return value.copy() if value is not None else None

    def is_derived(self, key: str) -> bool:
        return key in self.derived

    def tables(self) -> list[str]:
        return list(dict.fromkeys(t for e in self.entities.values() for t in e.tables))


def _where(source: str, line: int | None, entity: str | None, member: Member | None) -> str:
    parts = [f"{source}:{line}" if line else source]
    if entity:
        parts.append(f"entity '{entity}'")
    if member is not None:
        parts.append(member.label)
    return ", ".join(parts)


def _suggest(name: str, choices: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _line(data: Any) -> int | None:
    return getattr(data, "line", None)


def _check_keys(data: Any, allowed: tuple[str, ...], where: str, what: str) -> None:
    if not isinstance(data, dict):
        raise LensError(f"{where}: {what} must be a mapping")
    for key in data:
        if key not in allowed:
            hint = _suggest(str(key), allowed) or f" (known keys: {', '.join(allowed)})"
            raise LensError(f"{where}: unknown key {key!r} in {what}{hint}")


def _name(data: dict, where: str, what: str) -> str:
    name = data.get("name")
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise LensError(f"{where}: {what} needs a name made of letters, digits and _ (got {name!r})")
    return name


def _list(data: dict, key: str, where: str) -> list:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise LensError(f"{where}: '{key}' must be a list")
    return value


def load_model(path: str | Path, *, default_dialect: str = sql.DEFAULT_DIALECT) -> Model:
    """Read, validate and resolve a model file; every mistake is a LensError naming where it is."""
    file = Path(path)
    if not file.is_file():
        raise LensError(f"model file {file} does not exist")
    data = read_yaml(file)
    source = str(file)
    _check_keys(data, MODEL_KEYS, source, "the model")
    dialect = sql.check_dialect(str(data.get("dialect") or default_dialect))
    entities: dict[str, Entity] = {}
    raw_relationships: list[tuple[str, dict]] = []
    for raw in _list(data, "entities", source):
        entity, relationships = _load_entity(raw, source, dialect)
        clash = {e.lower(): e for e in entities}.get(entity.name.lower())
        if clash is not None:
            first = entities[clash].line
            raise LensError(f"{source}:{entity.line}: entity '{entity.name}' is defined twice (first at line {first})")
        entities[entity.name] = entity
        raw_relationships.extend((entity.name, r) for r in relationships)
    if not entities:
        raise LensError(f"{source}: the model has no entities")
    model = Model(name=str(data.get("name") or file.stem), source=source, dialect=dialect, entities=entities,
                  edges={name: [] for name in entities}, expressions={}, derived={}, filter_expressions={})
    _Resolver(model).resolve_all()
    for entity_name, raw in raw_relationships:
        _add_relationship(model, entity_name, raw)
    return model


def _load_entity(raw: Any, source: str, dialect: str) -> tuple[Entity, list]:
    where = _where(source, _line(raw), None, None)
    _check_keys(raw, ENTITY_KEYS, where, "an entity")
    name = _name(raw, where, "an entity")
    where = _where(source, _line(raw), name, None)
    sql_block = raw.get("sql")
    _check_keys(sql_block, SQL_KEYS, where, "'sql'")
    try:
        query = sql.parse_entity_query(sql_block.get("query"), dialect)
    except sql.SnippetError as exc:
        raise LensError(f"{_where(source, _line(sql_block), name, None)}: sql.query: {exc}") from None
    columns = []
    for column in _list(sql_block, "columns", where):
        _check_keys(column, COLUMN_KEYS, where, "a column")
        columns.append(_name(column, where, "a column"))
    entity = Entity(name=name, line=_line(raw), query=query, columns=tuple(columns),
                    tables=tuple(sql.table_names(query)))
    for kind, key, loader in (("field", "fields", _load_field), ("dimension", "dimensions", _load_dimension),
                              ("measure", "measures", _load_measure)):
        for item in _list(raw, key, where):
            member = loader(item, source, name, dialect)
            if columns and member.kind == "field" and member.column not in columns:
                raise LensError(f"{_where(source, member.line, name, member)}: column {member.column!r} is not "
                                f"among sql.columns{_suggest(member.column, columns)}")
            clash = {m.lower(): m for m in entity.members}.get(member.name.lower())
            if clash is not None:  # Spark resolves names case-insensitively
                other = entity.members[clash]
                raise LensError(f"{_where(source, member.line, name, member)}: the name '{member.name}' is already "
                                f"used by {other.label} at line {other.line}")
            entity.members[member.name] = member
    relationships = _list(raw, "relationships", where)
    return entity, relationships


def _value_type(raw: dict, where: str, default: str = "string") -> str:
    value = str(raw.get("type") or default).lower()
    value = TYPE_ALIASES.get(value, value)
    if value not in VALUE_TYPES:
        raise LensError(f"{where}: type {raw.get('type')!r} is not one of {', '.join(VALUE_TYPES)}")
    return value


def _snippet(text: Any, where: str, dialect: str) -> sql.Snippet:
    try:
        return sql.parse_snippet(text, dialect)
    except sql.SnippetError as exc:
        shown = sql.pointer(text, exc.position) if isinstance(text, str) and text.strip() else ""
        raise LensError(f"{where}: sql_snippet: {exc}{shown}") from None


def _load_field(raw: Any, source: str, entity: str, dialect: str) -> Member:
    where = _where(source, _line(raw), entity, None)
    _check_keys(raw, FIELD_KEYS, where, "a field")
    name = _name(raw, where, "a field")
    column = raw.get("column") or name
    if not isinstance(column, str):
        raise LensError(f"{where}, field '{name}': column must be a column name")
    where = f"{where}, field '{name}'"
    return Member(entity=entity, name=name, kind="field", type=_value_type(raw, where), line=_line(raw),
                  hidden=bool(raw.get("hidden", False)), description=str(raw.get("description") or ""),
                  column=column, primary=bool(raw.get("primary", False)))


def _load_dimension(raw: Any, source: str, entity: str, dialect: str) -> Member:
    where = _where(source, _line(raw), entity, None)
    _check_keys(raw, DIMENSION_KEYS, where, "a dimension")
    name = _name(raw, where, "a dimension")
    where = f"{where}, dimension '{name}'"
    snippet = _snippet(raw.get("sql_snippet"), where, dialect)
    if snippet.has_aggregate():
        raise LensError(f"{where}: a dimension cannot aggregate (make it a measure){sql.pointer(snippet.text, None)}")
    return Member(entity=entity, name=name, kind="dimension", type=_value_type(raw, where), line=_line(raw),
                  hidden=bool(raw.get("hidden", False)), description=str(raw.get("description") or ""),
                  snippet=snippet)


def _load_measure(raw: Any, source: str, entity: str, dialect: str) -> Member:
    where = _where(source, _line(raw), entity, None)
    _check_keys(raw, MEASURE_KEYS, where, "a measure")
    name = _name(raw, where, "a measure")
    where = f"{where}, measure '{name}'"
    kind = raw.get("type")
    if kind not in MEASURE_TYPES:
        raise LensError(f"{where}: type {kind!r} is not one of {', '.join(MEASURE_TYPES)}{_suggest(str(kind), MEASURE_TYPES)}")
    text = raw.get("sql_snippet")
    snippet = None
    if text is not None or kind != "count":
        snippet = _snippet(text, where, dialect)
        if kind != "number" and snippet.has_aggregate():
            raise LensError(f"{where}: a {kind} measure aggregates its snippet itself; the snippet must not "
                            f"aggregate (use type: number for a custom aggregate){sql.pointer(snippet.text, None)}")
    filters = []
    for i, item in enumerate(_list(raw, "filters", where)):
        if isinstance(item, dict) and set(item) == {"sql_snippet"}:
            filters.append(MeasureFilter(snippet=_snippet(item["sql_snippet"], f"{where}, filters[{i}]", dialect)))
        else:
            filters.append(MeasureFilter(structured=parse_filter(item, f"{where}, filters[{i}]")))
    if filters and kind == "number":
        raise LensError(f"{where}: a number measure cannot have filters (filter the measures it uses)")
    return Member(entity=entity, name=name, kind="measure", type=kind, line=_line(raw),
                  hidden=bool(raw.get("hidden", False)), description=str(raw.get("description") or ""),
                  snippet=snippet, filters=tuple(filters))


def _derived_marker(key: str) -> exp.Column:
    """Stands for a base measure's aggregated value inside a derived measure."""
    return exp.Column(this=sql.quoted(key))


class _Resolver:
    """Resolves every member to an AST, walking references depth-first with cycle detection."""

    def __init__(self, model: Model):
        self.model = model
        self.stack: list[str] = []

    def resolve_all(self) -> None:
        for entity in self.model.entities.values():
            for member in entity.members.values():
                self.resolve(member)

    def _fail(self, member: Member, message: str) -> LensError:
        shown = sql.pointer(member.snippet.text, None) if member.snippet else ""
        return LensError(f"{self.model.where(member)}: {message}{shown}")

    def _target(self, owner: Member, ref: sql.Reference) -> Member:
        if ref.entity not in self.model.entities:
            raise self._fail(owner, f"unknown entity in ${{{ref}}}{_suggest(ref.entity, self.model.entities)}")
        members = self.model.entities[ref.entity].members
        if ref.member not in members:
            raise self._fail(owner, f"entity '{ref.entity}' has no member '{ref.member}' "
                                    f"(in ${{{ref}}}){_suggest(ref.member, members)}")
        return members[ref.member]

    def resolve(self, member: Member) -> exp.Expression | None:
        key = member.key
        if key in self.model.expressions:
            return self.model.expressions[key]
        if key in self.stack:
            cycle = " -> ".join([*self.stack[self.stack.index(key):], key])
            raise self._fail(member, f"reference cycle: {cycle}")
        self.stack.append(key)
        try:
            value = self._resolve(member)
        finally:
            self.stack.pop()
        self.model.expressions[key] = value
        return value

    def _resolve(self, member: Member) -> exp.Expression | None:
        if member.kind == "field":
            return sql.column(member.column, member.entity)
        if member.snippet is None:  # count without a snippet: count(*)
            self._resolve_filters(member)
            return None
        targets = [self._target(member, ref) for ref in member.snippet.references]
        measures = [t for t in targets if t.kind == "measure"]
        if member.kind == "measure" and member.type == "number" and measures:
            return self._resolve_derived(member, targets)
        for target in targets:
            if target.kind == "measure":
                raise self._fail(member, f"${{{target.key}}} is a measure; only a number measure may use measures")
            if target.entity != member.entity:
                raise self._fail(member, f"${{{target.key}}} belongs to entity '{target.entity}': a {member.kind} "
                                         "may only use members of its own entity")
        if member.kind == "measure" and member.type == "number" and not member.snippet.has_aggregate():
            raise self._fail(member, "a number measure must aggregate (count, sum, ...) or combine other measures")
        value = self._substitute(member, member.snippet)
        if member.kind == "measure":
            self._resolve_filters(member)
        return value

    def _substitute(self, member: Member, snippet: sql.Snippet) -> exp.Expression:
        entity = self.model.entities[member.entity]
        known = set(entity.columns) | {m.column for m in entity.members.values() if m.kind == "field"}

        def bare(name: str) -> exp.Expression:
            if entity.columns and name not in known:
                raise self._fail(member, f"unknown column {name!r} (write ${{entity.member}} or a column of "
                                         f"sql.columns){_suggest(name, known)}")
            return sql.column(name, member.entity)

        def reference(ref: sql.Reference) -> exp.Expression:
            return self.resolve(self._target(member, ref))

        return sql.substitute(snippet, reference, bare)

    def _resolve_filters(self, member: Member) -> None:
        resolved = []
        for flt in member.filters:
            if flt.snippet is not None:
                for ref in flt.snippet.references:
                    target = self._target(member, ref)
                    if target.kind == "measure" or target.entity != member.entity:
                        raise self._fail(member, f"filter uses ${{{ref}}}: a measure filter may only use "
                                                 "fields and dimensions of its own entity")
                if flt.snippet.has_aggregate():
                    raise self._fail(member, "a measure filter cannot aggregate")
                resolved.append(self._substitute(member, flt.snippet))
            else:
                for leaf in _leaves(flt.structured):
                    target = self._target(member, sql.Reference(*leaf.member.split(".", 1)))
                    if target.kind == "measure" or target.entity != member.entity:
                        raise self._fail(member, f"filter on {leaf.member}: a measure filter may only use "
                                                 "fields and dimensions of its own entity")
        self.model.filter_expressions[member.key] = tuple(resolved)

    def _resolve_derived(self, member: Member, targets: list[Member]) -> exp.Expression:
        bases: list[str] = []
        for target in targets:
            if target.kind != "measure":
                raise self._fail(member, f"mixes measures with ${{{target.key}}}: a number measure that combines "
                                         "measures may only reference measures")
            self.resolve(target)
            bases.extend(self.model.derived.get(target.key, (target.key,)))
        self.model.derived[member.key] = tuple(dict.fromkeys(bases))

        def reference(ref: sql.Reference) -> exp.Expression:
            target = self._target(member, ref)
            return self.model.expressions[target.key] if target.key in self.model.derived else _derived_marker(target.key)

        def bare(name: str) -> exp.Expression:
            raise self._fail(member, f"column {name!r} in a number measure that combines measures: "
                                     "reference members as ${entity.member}")

        return sql.substitute(member.snippet, reference, bare)


def _leaves(node: Filter | FilterGroup | None) -> list[Filter]:
    if node is None:
        return []
    if isinstance(node, Filter):
        return [node]
    return [leaf for item in node.items for leaf in _leaves(item)]


def _add_relationship(model: Model, entity_name: str, raw: Any) -> None:
    entity = model.entities[entity_name]
    where = _where(model.source, _line(raw) or entity.line, entity_name, None)
    _check_keys(raw, RELATIONSHIP_KEYS, where, "a relationship")
    kind = str(raw.get("type"))
    if kind not in RELATIONSHIP_TYPES:
        raise LensError(f"{where}: relationship type {raw.get('type')!r} is not one of {', '.join(RELATIONSHIP_TYPES)}")
    target = raw.get("target")
    _check_keys(target, TARGET_KEYS, where, "a relationship target")
    target_name, target_field, own_field = target.get("name"), target.get("field"), raw.get("field")
    if target_name not in model.entities:
        raise LensError(f"{where}: relationship to unknown entity {target_name!r}{_suggest(str(target_name), model.entities)}")
    for owner, member_name in ((entity_name, own_field), (target_name, target_field)):
        members = model.entities[owner].members
        if member_name not in members or members[member_name].kind == "measure":
            raise LensError(f"{where}: relationship field {member_name!r} is not a field or dimension of entity "
                            f"'{owner}'{_suggest(str(member_name), members)}")
    if target_name == entity_name:
        raise LensError(f"{where}: a relationship from an entity to itself is not supported")
    forward = Edge(entity_name, target_name, own_field, target_field, kind)
    backward = Edge(target_name, entity_name, target_field, own_field, INVERSE[kind])
    existing = next((e for e in model.edges[entity_name] if e.target == target_name), None)
    if existing is not None:
        if existing != forward:
            raise LensError(f"{where}: a second, different relationship between '{entity_name}' and "
                            f"'{target_name}' (one join path per pair of entities)")
        return
    model.edges[entity_name].append(forward)
    model.edges[target_name].append(backward)
