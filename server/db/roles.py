"""The restricted application role: provisioned by the owner at migration time, checked at start-up.

Migration 0010 creates ``citywatch_app`` (NOLOGIN), which holds the server's grants: the data tables,
and only INSERT and SELECT on ``audit_log``. :func:`provision_app_role` makes the login role of
``DATABASE_URL`` a member of it (creating that role, with the DSN's password, when missing), so a
deployment needs nothing but the two DSNs. :func:`privilege_problems` says what the connected role
could do to the audit log that it should not.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from server.errors import MigrationError

log = logging.getLogger(__name__)

APP_ROLE = "citywatch_app"

_ROLE = """
SELECT rolsuper, rolcreaterole, rolbypassrls, rolcanlogin,
       EXISTS (SELECT 1 FROM pg_class WHERE relname = 'audit_log' AND relowner = r.oid)
FROM pg_roles r WHERE rolname = %s
"""


def dsn_user(dsn: str) -> str | None:
    user = conninfo_to_dict(dsn).get("user")
    return None if user is None else str(user)


def provision_app_role(conn: psycopg.Connection[tuple[object, ...]], app_dsn: str) -> str | None:
    """As the owner: give the ``app_dsn`` user LOGIN and membership of ``citywatch_app``.

    Returns the role name, or None when ``app_dsn`` connects as the owner itself (nothing to do: the
    server then runs unrestricted, which :func:`privilege_problems` reports). Refuses a role that is a
    superuser, may create roles, bypasses row security or owns ``audit_log``.
    """
    user = dsn_user(app_dsn)
    current = conn.execute("SELECT current_user").fetchone()
    if user is None or current is None or user == current[0]:
        return None
    row = conn.execute(_ROLE, (user,)).fetchone()
    password = conninfo_to_dict(app_dsn).get("password")
    ident = sql.Identifier(user)
    with conn.transaction():
        if row is None:
            stmt = sql.SQL(
                "CREATE ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
            ).format(ident)
            if password is not None:
                # Hashed here (SCRAM, by libpq): the clear password never appears in a statement or log.
                verifier = conn.pgconn.encrypt_password(
                    str(password).encode(), user.encode(), b"scram-sha-256"
                )
                stmt = sql.SQL("{} PASSWORD {}").format(stmt, sql.Literal(verifier.decode()))
            conn.execute(stmt)
            log.info("created the application role %s", user)
        else:
            superuser, createrole, bypassrls, _, owns_audit = row
            if superuser or createrole or bypassrls or owns_audit:
                raise MigrationError(
                    f"DATABASE_URL connects as {user!r}, which is a superuser, may create roles, bypasses "
                    "row security or owns audit_log: give the server a role of its own"
                )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), ident))
    return user


_PROBLEMS = """
SELECT r.rolsuper,
       pg_has_role(current_user, c.relowner, 'USAGE'),
       has_table_privilege(current_user, 'audit_log', 'DELETE'),
       has_table_privilege(current_user, 'audit_log', 'UPDATE'),
       has_table_privilege(current_user, 'audit_log', 'TRUNCATE')
FROM pg_roles r, pg_class c
WHERE r.rolname = current_user AND c.oid = 'audit_log'::regclass
"""


def privilege_problems(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """What the connected role could do to the audit log beyond INSERT and SELECT (empty: none)."""
    row = conn.execute(_PROBLEMS).fetchone()
    if row is None:
        return ["audit_log is missing"]
    names = ("is a superuser", "owns audit_log", "may DELETE", "may UPDATE", "may TRUNCATE")
    return [name for name, bad in zip(names, row, strict=True) if bad]
