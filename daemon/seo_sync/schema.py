"""The five tables of the platform document, declared once; DDL, keys and exports derive from here.

Column kinds say how a DynamoDB attribute is held in the cache:
- ``text``: an S value, as TEXT;
- ``number``: an N value, as INTEGER when integral within 64 bits, as REAL when its decimal text
  survives a double exactly, else the exact decimal TEXT (codec/numbers.py). The column has no
  declared type, hence no affinity: any numeric affinity would turn the exact TEXT of a 20-digit
  number into a rounded REAL. Comparisons with numbers (`< 0.9`, `max()`, `ORDER BY`) are numeric
  for INTEGER and REAL values without any affinity;
- ``bool``: a BOOL value, as 0/1;
- ``json``: an M, L or set value as its natural JSON text (sets sorted arrays, binary base64,
  exact number literals; codec/jsoncols.py).
What a column cannot say by itself (a set, binary, a number's exact spelling) is noted in the
``_types`` column; a value whose type does not fit its column goes to ``_extra`` (lossless, typed).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from seo_sync.errors import BadInput

ColumnKind = Literal["text", "number", "bool", "json"]

DEFAULT_PREFIX = "seo_"
VERSION_ATTR = "_version"
DELETED_ATTR = "_deleted"
EXTRA_COLUMN = "_extra"
TYPES_COLUMN = "_types"

# Ids that reach file names (backups, exports) must match this, so no id can climb out of its directory.
SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{0,64}$")


@dataclass(frozen=True)
class Column:
    """One typed cache column, named after the DynamoDB attribute it holds."""

    name: str
    kind: ColumnKind

    @property
    def sql_type(self) -> str:
        """The declared SQLite type; empty for numbers so no affinity conversion can lose digits (see above)."""
        return {"text": "TEXT", "number": "", "bool": "INTEGER", "json": "TEXT"}[self.kind]


@dataclass(frozen=True)
class TableSpec:
    """One DynamoDB table and its cache table."""

    name: str  # cache table name, and the DynamoDB name without the prefix
    entity: str  # singular entity type used by the CLI and the delete-rate ledger
    hash_key: str
    range_key: str | None
    columns: tuple[Column, ...]
    versioned: bool  # the platform document versions it (the write path stamps all five)
    soft_deletable: bool
    range_key_doc: str = ""
    extra_indexes: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def key_names(self) -> tuple[str, ...]:
        """The key attribute names, hash key first."""
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    def dynamo_name(self, prefix: str = DEFAULT_PREFIX) -> str:
        """The DynamoDB table name under `prefix`."""
        return f"{prefix}{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        """All cache column names: keys and typed columns, then `_version`, `_extra` and `_types`."""
        return (*self.key_names, *(c.name for c in self.columns), VERSION_ATTR, EXTRA_COLUMN, TYPES_COLUMN)

    def column(self, name: str) -> Column | None:
        """The typed (non-key) column named `name`, if any."""
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def key_of(self, item: dict) -> tuple[str, ...]:
        """The key tuple of a plain-Python item; raises BadInput when a key is missing or not a string."""
        out = []
        for k in self.key_names:
            v = item.get(k)
            if not isinstance(v, str) or v == "":
                raise BadInput(f"{self.name}: key attribute {k!r} missing or not a non-empty string")
            out.append(v)
        return tuple(out)

    def key_of_item(self, item: dict) -> tuple[str, ...]:
        """The key tuple of a DynamoDB item (AttributeValues): each key attribute must be a non-empty S."""
        return self.key_of({k: av.get("S") for k in self.key_names if isinstance(av := item.get(k), dict)})

    def key_example(self) -> str:
        """A JSON key of this table as `refresh` takes it, for hints."""
        examples = {"business_id": "b1", "keyword_id": "roof-repair#en", "area_id": "denver",
                    "template_id": "service_page#1"}
        return json.dumps({k: examples.get(k, "x") for k in self.key_names})

    def key_from_json(self, text: str) -> tuple[str, ...]:
        """The key tuple from JSON text: an object of exactly the key attributes, or a list in key order.

        Raises BadInput (with an example of this table's key) on anything else: not JSON, other
        attributes, a value that is not a non-empty string, the wrong number of values.
        """
        hint = f"give the key as a JSON object, e.g. {self.key_example()}, or a JSON list in key order"
        try:
            value: Any = json.loads(text)
        except (ValueError, RecursionError):
            raise BadInput(f"{self.name}: the key {text[:80]!r} is not JSON", hint=hint) from None
        if isinstance(value, dict):
            if set(value) != set(self.key_names):
                raise BadInput(f"{self.name}: the key has attributes {sorted(value)[:5]}, the table's key is "
                               f"{list(self.key_names)}", hint=hint)
            values = [value[k] for k in self.key_names]
        elif isinstance(value, list):
            if len(value) != len(self.key_names):
                raise BadInput(f"{self.name}: the key has {len(value)} values, the table's key is "
                               f"{list(self.key_names)}", hint=hint)
            values = value
        else:
            raise BadInput(f"{self.name}: the key must be a JSON object or list, not {type(value).__name__}",
                           hint=hint)
        if not all(isinstance(v, str) and v for v in values):
            raise BadInput(f"{self.name}: each key value must be a non-empty string", hint=hint)
        return tuple(values)


def _cols(*pairs: tuple[str, ColumnKind]) -> tuple[Column, ...]:
    return tuple(Column(n, k) for n, k in pairs)


BUSINESSES = TableSpec(
    name="businesses", entity="business", hash_key="business_id", range_key=None,
    columns=_cols(("name", "text"), ("industry", "text"), ("phone", "text"), ("email", "text"),
                  ("website", "text"), ("created_at", "text"), ("updated_at", "text")),
    versioned=True, soft_deletable=True,
)
QUESTIONNAIRES = TableSpec(
    name="questionnaires", entity="questionnaire", hash_key="business_id", range_key=None,
    columns=_cols(("data", "json"), ("completeness_score", "number"), ("created_at", "text"),
                  ("updated_at", "text")),
    versioned=True, soft_deletable=False,
)
KEYWORDS = TableSpec(
    name="keywords", entity="keyword", hash_key="business_id", range_key="keyword_id",
    range_key_doc="slug#language",
    columns=_cols(("slug", "text"), ("keyword", "text"), ("language", "text"),
                  ("search_intent", "text"), ("created_at", "text")),
    versioned=False, soft_deletable=True,
)
SERVICE_AREAS = TableSpec(
    name="service_areas", entity="service_area", hash_key="business_id", range_key="area_id",
    range_key_doc="slug",
    columns=_cols(("slug", "text"), ("city", "text"), ("state", "text"), ("country", "text"),
                  ("county", "text"), ("priority", "number"), ("created_at", "text"),
                  ("updated_at", "text")),
    versioned=False, soft_deletable=True,
)
PROMPT_TEMPLATES = TableSpec(
    name="prompt_templates", entity="prompt_template", hash_key="business_id", range_key="template_id",
    range_key_doc="page_type#version",
    columns=_cols(("page_type", "text"), ("version", "number"), ("template", "text"),
                  ("required_variables", "json"), ("optional_variables", "json"),
                  ("word_count_target", "number"), ("is_active", "bool"), ("created_at", "text")),
    versioned=False, soft_deletable=True,
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (BUSINESSES, QUESTIONNAIRES, KEYWORDS, SERVICE_AREAS, PROMPT_TEMPLATES)
}
ENTITIES: dict[str, TableSpec] = {t.entity: t for t in TABLES.values()}


def table(name: str) -> TableSpec:
    """The spec for a cache table name, DynamoDB-less name, or entity type; BadInput if unknown."""
    spec = TABLES.get(name) or ENTITIES.get(name) or ENTITIES.get(name.rstrip("s"))
    if spec is None:
        raise BadInput(f"unknown table or entity {name!r}", hint=f"one of: {', '.join(TABLES)}")
    return spec


def table_for_dynamo_name(dynamo_name: str, prefix: str) -> TableSpec | None:
    """The spec whose DynamoDB name under `prefix` is `dynamo_name`, if any."""
    for spec in TABLES.values():
        if spec.dynamo_name(prefix) == dynamo_name:
            return spec
    return None


def check_safe_id(value: str, what: str = "business id") -> str:
    """Return `value` if it may appear in a file name, else raise BadInput saying what is allowed."""
    if not isinstance(value, str) or not SAFE_ID_RE.fullmatch(value):
        raise BadInput(
            f"{what} {value!r:.80} is not allowed here",
            hint="ids used in file names must be 1-64 characters of A-Z a-z 0-9 _ -",
        )
    return value
