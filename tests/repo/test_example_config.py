"""config/seo-sync.example.toml documents every setting with its default: checked against config.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from seo_sync.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "seo-sync.example.toml"
SECTION_RE = re.compile(r"^\[(\w+)\]\s*$")
KEY_RE = re.compile(r"^(?P<off>#\s*)?(?P<key>[a-z_]+)\s*=\s*(?P<value>.+)$")


def _sections() -> dict[str | None, type[BaseModel]]:
    out: dict[str | None, type[BaseModel]] = {None: Settings}
    for name, info in Settings.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out[name] = info.annotation
    return out


def _documented() -> dict[tuple[str | None, str], dict]:
    """(section, key) → {active, value, comment} for every key line, active or commented out."""
    found: dict[tuple[str | None, str], dict] = {}
    section: str | None = None
    comment: list[str] = []
    for line in EXAMPLE.read_text().splitlines():
        if m := SECTION_RE.match(line):
            section, comment = m.group(1), []
        elif m := KEY_RE.match(line):
            found[(section, m.group("key"))] = {"active": not m.group("off"), "value": m.group("value"),
                                                "comment": " ".join(comment)}
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("# ").strip())
        else:
            comment = []
    return found


def test_example_loads_to_the_defaults() -> None:
    """Loading the example file changes nothing: every value in it is the default."""
    assert load_settings(path=EXAMPLE, env={}) == Settings()


def test_every_setting_is_documented_in_its_section() -> None:
    """Each field of Settings and of each section has a key line (commented out if it has no default)."""
    documented = _documented()
    expected = set()
    for section, model in _sections().items():
        for name, info in model.model_fields.items():
            if section is None and name in _sections():
                continue  # a section, not a key
            expected.add((section, name))
            entry = documented.get((section, name))
            assert entry is not None, f"[{section or 'top'}] {name} is not in the example"
            assert entry["active"] == (info.default is not None), f"{name}: active iff it has a default"
    assert set(documented) == expected  # nothing documented that does not exist


def test_every_setting_has_a_paragraph() -> None:
    """Each key is introduced by a comment of at least one sentence saying what it does."""
    for (section, key), entry in _documented().items():
        words = entry["comment"].split()
        assert len(words) >= 8, f"[{section or 'top'}] {key}: comment too short: {entry['comment']!r}"


@pytest.mark.parametrize(("section", "key"), [k for k, v in _documented().items() if not v["active"]])
def test_commented_examples_are_valid(section: str | None, key: str, tmp_path: Path) -> None:
    """Uncommenting any example line gives a configuration that loads."""
    text = EXAMPLE.read_text()
    pattern = re.compile(rf"^#\s*({re.escape(key)}\s*=.*)$", re.M)
    lines = text.splitlines()
    out, current = [], None
    for line in lines:
        if m := SECTION_RE.match(line):
            current = m.group(1)
        if current == section and pattern.match(line):
            line = pattern.sub(r"\1", line)
        out.append(line)
    path = tmp_path / "c.toml"
    path.write_text("\n".join(out) + "\n")
    settings = load_settings(path=path, env={})
    value = getattr(getattr(settings, section) if section else settings, key)
    assert value is not None
