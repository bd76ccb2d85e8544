"""Every SQLSTATE the functions raise is mapped by the one Python registry and listed in the README."""

from __future__ import annotations

import re
from pathlib import Path

from service.api_errors import API_ERRORS, DB_ERRORS

ROOT = Path(__file__).resolve().parents[2]


def raised_sqlstates() -> set[str]:
    found = set()
    for path in [*(ROOT / "procedures").glob("*.sql"), *(ROOT / "sql").glob("*.sql")]:
        found |= set(re.findall(r"ERRCODE\s*=\s*'(WL\d{3})'", path.read_text(), flags=re.IGNORECASE))
    return found


def readme_error_rows() -> dict[str, tuple[int, str]]:
    """SQLSTATE -> (HTTP status, code) from the README's error table."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*(\d{3})\s*\|\s*`([A-Z_]+)`\s*\|([^|]*)\|", line)
        if m:
            for state in re.findall(r"`(\w{5})`", m.group(3)):
                rows[state] = (int(m.group(1)), m.group(2))
    return rows


def test_procedures_raise_the_known_codes():
    assert {f"WL00{i}" for i in range(1, 9)} <= raised_sqlstates()


def test_every_raised_sqlstate_is_in_the_registry():
    missing = raised_sqlstates() - set(DB_ERRORS)
    assert not missing, f"add {sorted(missing)} to service/errors.py DB_ERRORS"


def test_every_raised_sqlstate_is_in_the_readme_table_with_the_registry_answer():
    rows = readme_error_rows()
    for state in sorted(raised_sqlstates()):
        assert state in rows, f"README error table lacks {state}"
        assert rows[state] == (DB_ERRORS[state].status, DB_ERRORS[state].code), state


def test_registry_answers_only_contract_codes_with_their_status():
    for state, spec in DB_ERRORS.items():
        assert API_ERRORS[spec.code] == spec.status, state


def test_readme_lists_every_api_error_code():
    readme = (ROOT / "README.md").read_text()
    for code, status in API_ERRORS.items():
        assert re.search(rf"\|\s*{status}\s*\|\s*`{code}`", readme), code
