"""Scan and GetRecords answers read with orjson instead of botocore's generic response parser.

botocore still signs, sends, retries, checks DynamoDB's CRC32 and turns every error answer into
a ClientError; only the body of a successful Scan or GetRecords answer is read here. botocore's
parser walks every AttributeValue of every item through its shape model (about three quarters of a
plain Scan's CPU time on two cores), and the codec validates and converts each of them again
anyway, so the attribute-heavy members (`Items` and `LastEvaluatedKey` of a Scan, `Records` of
GetRecords) are decoded by orjson into the very dicts botocore would build, and botocore parses
what is left of the body (counts, iterators, consumed capacity) as usual.

The hook is botocore's `before-parse` event and its `customized_response_dict` argument, which
botocore merges into the parsed answer. That argument is not a documented interface, so botocore is
not trusted blindly: raw_check.py compares this module's answer with botocore's own parser on canned
pages before a client gets the hook, and leaves every answer to botocore's parser if they differ.

What comes out equals botocore's parse for every well-formed answer (N stays the exact string
DynamoDB sent, B and BS become bytes, timestamps datetimes by botocore's own parser). On a malformed
attribute it keeps what was sent rather than dropping it as botocore does (an unknown type tag,
a B that is not base64), so the codec's validation rejects that one item into the dead letters.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable
from typing import Any

import orjson
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER

from seo_sync.errors import IncompleteAnswer

# The operations read here, and the members of their answers that hold AttributeValues.
FAST_MEMBERS: dict[str, tuple[str, ...]] = {"Scan": ("Items", "LastEvaluatedKey"), "GetRecords": ("Records",)}
HANDLER_ID = "seo_sync.raw_responses"
# How the JSON of an answer spells a B or BS type tag: as is, or with a letter \u-escaped. Without
# any of these, no AttributeValue in the answer is binary and orjson's dicts are botocore's already.
_BINARY_MARKERS = (b'"B"', b'"BS"', b"\\u0042", b'"B\\u0053"')

Convert = Callable[[Any], Any]


def _blob(value: Any) -> Any:
    """A B value as bytes, decoded as botocore decodes it; anything undecodable stays as sent."""
    if type(value) is str:
        try:
            return base64.b64decode(value)
        except (binascii.Error, ValueError):
            return value
    return value


def attribute_value(av: Any) -> Any:
    """One AttributeValue with its B and BS values (at any depth) as bytes."""
    if type(av) is dict and len(av) == 1:
        ((tag, value),) = av.items()
        if tag == "B":
            return {"B": _blob(value)}
        if tag == "BS" and type(value) is list:
            return {"BS": [_blob(x) for x in value]}
        if tag == "M" and type(value) is dict:
            return {"M": {k: attribute_value(x) for k, x in value.items()}}
        if tag == "L" and type(value) is list:
            return {"L": [attribute_value(x) for x in value]}
    return av


def attribute_map(value: Any) -> Any:
    """An item (attribute name -> AttributeValue) with binary values as bytes."""
    if type(value) is dict:
        return {k: attribute_value(x) for k, x in value.items()}
    return value


def may_hold_binary(body: bytes) -> bool:
    """False only when no AttributeValue in `body` can be of type B or BS."""
    return any(marker in body for marker in _BINARY_MARKERS)


def _same(value: Any) -> Any:
    return value


class _Converters:
    """Converters from orjson's values to botocore's, compiled once per shape of the service model.

    They follow botocore's JSON parser: a structure keeps its modelled members that are not null,
    lists and maps convert their members, blobs are base64-decoded, timestamps parsed by botocore's
    own timestamp parser, everything else stays as orjson read it. An attribute map (item, key,
    image) takes `attribute_map` when the answer may hold binary values and stays as read when not.
    """

    def __init__(self) -> None:
        self.cache: dict[tuple[str, bool], Convert] = {}
        self.compiling: dict[tuple[str, bool], Convert] = {}
        # Scan segments ask from several threads at once; none may see a converter half compiled.
        self.lock = threading.RLock()

    def of(self, shape: Any, binary: bool) -> Convert:
        """The converter of values of `shape` (botocore.model.Shape)."""
        key = (shape.name, binary)
        found = self.cache.get(key)
        if found is not None:
            return found
        with self.lock:
            if key in self.cache:
                return self.cache[key]
            if key in self.compiling:  # a shape that contains itself: identity there, never unbounded
                return self.compiling[key]
            self.compiling[key] = _same
            convert = self._compile(shape, binary)
            del self.compiling[key]
            self.cache[key] = convert
            return convert

    def _compile(self, shape: Any, binary: bool) -> Convert:
        kind = shape.type_name
        if kind == "map" and shape.value.name == "AttributeValue":
            return attribute_map if binary else _same
        if shape.name == "AttributeValue":
            return attribute_value if binary else _same
        if kind == "structure":
            members = [(name, member.serialization.get("name", name), self.of(member, binary))
                       for name, member in shape.members.items()]

            def structure(value: Any) -> Any:
                if value is None:
                    return None
                return {name: convert(value[wire]) for name, wire, convert in members
                        if value.get(wire) is not None}
            return structure
        if kind == "list":
            element = self.of(shape.member, binary)
            return _same if element is _same else (lambda value: [element(x) for x in value])
        if kind == "map":
            entry = self.of(shape.value, binary)
            return _same if entry is _same else (lambda value: {k: entry(x) for k, x in value.items()})
        if kind == "blob":
            return base64.b64decode
        if kind == "timestamp":
            return DEFAULT_TIMESTAMP_PARSER
        return _same


_CONVERTERS = _Converters()


def decode_answer(operation_model: Any, body: bytes) -> tuple[dict[str, Any], bytes] | None:
    """(the attribute-heavy members converted, the rest of the body for botocore), or None to leave it all to botocore.

    None when orjson cannot read the body (botocore's parser then decides what it means, exactly as
    without this module) or a member does not have the shape the model gives it. A body that is JSON
    but not an object is no answer of these operations: IncompleteAnswer, never an empty page.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        raise IncompleteAnswer(f"{operation_model.name}: the answer is not a JSON object", hint="retried")
    binary = may_hold_binary(body)
    members = operation_model.output_shape.members
    ours: dict[str, Any] = {}
    try:
        for name in FAST_MEMBERS.get(operation_model.name, ()):
            value = doc.pop(name, None)
            if value is not None:
                ours[name] = _CONVERTERS.of(members[name], binary)(value)
    except (TypeError, AttributeError, KeyError, ValueError, RecursionError):
        return None
    return ours, (orjson.dumps(doc) if doc else b"")


def _before_parse(operation_model: Any = None, response_dict: Any = None, customized_response_dict: Any = None,
                  **_: Any) -> None:
    """botocore's before-parse handler: decode a successful answer's heavy members ourselves."""
    if operation_model is None or not isinstance(response_dict, dict) or not isinstance(customized_response_dict,
                                                                                         dict):
        return  # not the event this module was written against: botocore parses as usual
    body = response_dict.get("body")
    if response_dict.get("status_code", 500) >= 300 or type(body) is not bytes:
        return  # error answers stay botocore's (ClientError)
    if not body.strip():  # botocore would read it as `{}`: no records, an empty page
        raise IncompleteAnswer(f"{operation_model.name}: the answer's body is empty",
                               hint="the network cut it; the call is retried")
    decoded = decode_answer(operation_model, body)
    if decoded is None:
        return
    ours, rest = decoded
    customized_response_dict.update(ours)
    response_dict["body"] = rest


def _events(client: Any) -> tuple[Any, str, list[str]] | None:
    """A botocore client's event emitter, hyphenized service id and the hooked operations it has."""
    meta = getattr(client, "meta", None)
    events = getattr(meta, "events", None)
    model = getattr(meta, "service_model", None)
    if events is None or model is None:
        return None  # a test double shaped like a client: nothing to hook
    return events, model.service_id.hyphenize(), [op for op in FAST_MEMBERS if op in model.operation_names]


def install(client: Any) -> bool:
    """Read this client's Scan / GetRecords answers with orjson from now on; False if it has neither."""
    found = _events(client)
    if found is None or not found[2]:
        return False
    events, service, operations = found
    for op in operations:
        events.register(f"before-parse.{service}.{op}", _before_parse, unique_id=f"{HANDLER_ID}.{service}.{op}")
    return True


def uninstall(client: Any) -> None:
    """Give this client's answers back to botocore's parser (the benchmark's before/after)."""
    found = _events(client)
    if found is None:
        return
    events, service, operations = found
    for op in operations:
        events.unregister(f"before-parse.{service}.{op}", _before_parse, unique_id=f"{HANDLER_ID}.{service}.{op}")
