"""Whether an operation's own field (payment_method, bonus_type, item_id) is required is stated once, in
the OpenAPI document, and enforced by the SQL function for every caller: the two must agree."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from service.validation import OPERATION_FIELDS, operation_field_required


@pytest.mark.parametrize("operation", sorted(OPERATION_FIELDS))
def test_the_document_and_the_sql_function_agree_on_the_operation_field(conn, operation):
    field = OPERATION_FIELDS[operation]
    call = sql.SQL(
        "SELECT * FROM {}(p_user_id => 'user_alice', p_asset_code => 'GOLD_COINS', p_amount => 1, "
        "p_reference_id => 'req_' || %s, {} => NULL)"
    ).format(sql.Identifier(f"wallet_{operation}"), sql.Identifier(f"p_{field}"))
    try:
        conn.execute(call, (operation,))
        sql_requires = False
    except psycopg.Error as error:
        assert error.sqlstate == "WL006" and error.diag.column_name == field, error
        assert error.diag.message_primary == f"invalid argument {field}: is required"
        sql_requires = True
    assert operation_field_required(operation) == sql_requires


def test_the_document_requires_bonus_type_and_item_id_only():
    assert {op: operation_field_required(op) for op in OPERATION_FIELDS} == {
        "topup": False,
        "bonus": True,
        "spend": True,
    }
