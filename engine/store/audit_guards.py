"""Database triggers that make a trail table append-only (``audit_event``, ``catalog_change``), for migrations.

The hash chain detects tampering; the triggers stop the application (or a careless script) from
tampering in the first place. Someone with DDL rights can still drop them, which is what the
chain is for.
"""

from __future__ import annotations

from alembic import op

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{table} is append-only';
END;
$$ LANGUAGE plpgsql
"""


GUARDED = ("audit_event", "catalog_change", "org_change")  # the trails the migrations guard


def guard_statements(table: str, dialect: str) -> list[str]:
    """The DDL that makes ``table`` append-only on ``dialect`` (postgresql or sqlite)."""
    if dialect == "postgresql":
        return [
            _PG_FUNCTION.format(table=table),
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()",
        ]
    return [
        f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        for action in ("UPDATE", "DELETE")
    ]


def create_audit_guards(table: str = "audit_event") -> None:
    for statement in guard_statements(table, op.get_bind().dialect.name):
        op.execute(statement)


def drop_audit_guards(table: str = "audit_event") -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
