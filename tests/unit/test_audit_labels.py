"""Every audit entry the code writes reads as words, not as internal codes."""

import re
from pathlib import Path

import pytest

from backend.domains.audit.rules import ACTIONS, ENTITIES, describe
from backend.lib import i18n

BACKEND = Path(__file__).resolve().parents[2] / "backend"
LITERAL = re.compile(r'\b(action|entity)="([a-z_]+)"')
CONSTANT = re.compile(r'^([A-Z_]+) = "([a-z_]+)"$', re.M)


def _codes_written_by_the_code() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {"action": set(), "entity": set()}
    for path in BACKEND.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "audit.record" not in text and "_record(" not in text:
            continue
        for kind, code in LITERAL.findall(text):
            found[kind].add(code)
        constants = dict(CONSTANT.findall(text))
        for name in re.findall(r"entity=([A-Z_]+)", text):
            found["entity"].add(constants[name])
        for code in re.findall(r'_record\([^()"]*?, "([a-z_]+)"', text):
            found["action"].add(code)
    return found


def test_every_action_and_entity_in_the_code_has_a_label():
    found = _codes_written_by_the_code()
    assert "vehicle" in found["entity"] and "service_appointment" in found["entity"]
    assert not found["action"] - ACTIONS.keys(), "audit actions without a label"
    assert not found["entity"] - ENTITIES.keys(), "audit entities without a label"


@pytest.fixture
def english():
    previous = i18n.current_locale()
    i18n.set_locale("en")
    yield
    i18n.set_locale(previous)


def test_describe_reads_as_a_sentence(english):
    assert describe("reserve", "vehicle", "5") == "reserved vehicle #5"
    assert describe("cancel", "service_appointment", "9") == "cancelled service appointment #9"
    assert describe("mystery", "thing") == "mystery thing"
