"""The ``creditflow`` command line: set-up, catalog, demo data, serving, and audit checks."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from engine.config import ConfigError, Settings
from engine.errors import CreditFlowError, NotFound


def _settings() -> Settings:
    """The settings from the environment, or a one-line error naming the variable (exit 2)."""
    try:
        return Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _platform() -> Any:
    from engine.container import CreditFlow

    return CreditFlow(_settings())


def _fail(exc: CreditFlowError) -> None:
    click.echo(f"error: {exc.detail}", err=True)
    for problem in exc.problems:
        where = problem.get("location") or problem.get("field") or ""
        click.echo(f"  - {where}: {problem.get('message')}", err=True)
    sys.exit(1 if exc.status < 500 else 2)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
def main(verbose: bool) -> None:
    """CreditFlow: BPMN credit processes for rural banks."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from engine.masking import install_log_masking

    install_log_masking()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to DATABASE_URL (default: the SQLite file under var/)."""
    from engine.store.migrate import upgrade

    platform = _platform()
    upgrade(platform.db, revision, forms_dir=platform.settings.forms_dir, bpmn_dir=platform.settings.bpmn_dir)
    click.echo(f"database at {platform.db.engine.url.render_as_string(hide_password=True)} is at {revision}")


@main.group()
def catalog() -> None:
    """The shipped process archetypes and forms."""


@catalog.command("load")
def catalog_load() -> None:
    """Deploy every model under bpmn/ (identical content keeps its version)."""
    from engine.services.catalog import load_catalog
    from engine.services.principal import Principal

    platform = _platform()
    try:
        result = load_catalog(platform, Principal.system(), progress=lambda msg: click.echo(msg))
    except CreditFlowError as exc:
        _fail(exc)
    click.echo(
        f"forms: {len(platform.forms.names())}; products: {platform.products.list(Principal.system())[1]}; processes: "
        + ", ".join(f"{d.key} v{d.version}" for d in result.definitions)
    )
    stale = platform.products.stale_forms(Principal.system())
    if not stale:
        click.echo("every product on sale uses the form files as they are")
        return
    click.echo("forms changed since these products on sale were published (publish them again for new applications):")
    for name, products in stale.items():
        shown = ", ".join(products[:10]) + (f" and {len(products) - 10} more" if len(products) > 10 else "")
        click.echo(f"  {name}: {len(products)} product(s): {shown}")


@catalog.group("changes")
def catalog_changes() -> None:
    """The catalog's change trail (变更留痕): who changed which product or process, when, from what to what."""


@catalog_changes.command("verify")
@click.option("--tenant", "tenant_code", help="Only this bank's chain (the province's code: its templates').")
def catalog_changes_verify(tenant_code: str | None) -> None:
    """Recompute the hash chains of the catalog's change trail; exit 1 if one was tampered with, 2 if there
    is no such tenant."""
    _verify_changes(lambda platform: platform.catalog_changes, tenant_code, shared="province")


def _verify_changes(trail: Callable[[Any], Any], tenant_code: str | None, shared: str) -> None:
    """Print each chain's verdict, labelled with its tenant's code (``shared`` for the tenant-less one);
    exit 1 if one was tampered with, 2 if there is no such tenant."""
    from engine.services.principal import Principal

    platform = _platform()
    try:
        reports = trail(platform).verify(Principal.system(), tenant_code)
    except NotFound as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
    except CreditFlowError as exc:
        _fail(exc)
    codes = _tenant_codes(platform)
    for report in reports:
        _chain_verdict(f"{codes.get(report.tenant_id, shared)}: ", report.changes, "changes", report.problems)
    if not all(report.ok for report in reports):
        sys.exit(1)


def _chain_verdict(label: str, count: int, noun: str, problems: list[str]) -> None:
    """A recomputed hash chain: intact, or tampered with and every problem found."""
    if not problems:
        click.echo(f"ok: {label}{count} {noun}, chain intact")
        return
    click.echo(f"TAMPERED: {label}{len(problems)} problem(s) in {count} {noun}", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)


@main.group()
def products() -> None:
    """Credit products."""


@products.command("validate")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def products_validate(directory: Path | None) -> None:
    """Validate every product config in DIRECTORY (default: the standard catalog); exit 1 on any problem."""
    from engine.catalog.config import DEFAULT_STANDARD_DIR, validate_catalog
    from engine.forms.catalog import FormCatalog
    from engine.services.products import RULES_DIR, archetype_keys, rule_files

    settings = _settings()
    folder = directory or DEFAULT_STANDARD_DIR
    problems = validate_catalog(
        folder,
        archetypes=archetype_keys(settings.bpmn_dir),
        forms=FormCatalog(settings.forms_dir),
        rule_files=rule_files(RULES_DIR),
    )
    count = len(list(folder.glob("*.json")))
    if problems:
        for problem in problems:
            click.echo(f"  - {problem.get('file', '')} {problem['field']}: {problem['message']}", err=True)
        click.echo(f"{len(problems)} problem(s) in {count} product(s)", err=True)
        sys.exit(1)
    click.echo(f"ok: {count} product(s) valid")


@products.command("list")
@click.option("--tenant", "tenant_code", help="One bank's products, or the province's code for the templates.")
@click.option("--archetype", help="Only products on this process archetype.")
def products_list(tenant_code: str | None, archetype: str | None) -> None:
    """One line per product: code, owner, archetype, published version (or draft) and name."""
    from engine.services.principal import Principal

    platform = _platform()
    found: list[Any] = []
    try:
        while True:
            page, total = platform.products.list(
                Principal.system(), tenant=tenant_code, archetype=archetype, limit=200, offset=len(found)
            )
            found += page
            if not page or len(found) >= total:
                break
    except CreditFlowError as exc:
        _fail(exc)
    owners = _tenant_codes(platform)
    for view in found:
        owner = owners.get(view.product.tenant_id, "province")
        version = f"v{view.current.version}" if view.current else "draft"
        click.echo(f"{view.product.code:<22} {owner:<16} {view.product.archetype:<28} {version:<6} {view.product.name}")
    click.echo(f"{len(found)} product(s)")


@products.command("show")
@click.argument("code")
@click.option("--version", type=click.IntRange(min=1), help="A published version (default: the newest).")
def products_show(code: str, version: int | None) -> None:
    """A product as JSON: owner, template, draft, and a published version's resolved config."""
    from engine.services.principal import Principal

    platform = _platform()
    try:
        view = platform.products.get(Principal.system(), code)
        published = platform.products.versions(Principal.system(), code)
    except CreditFlowError as exc:
        _fail(exc)
    chosen = next((v for v in published if v.version == version), None) if version else view.current
    if version and chosen is None:
        _fail(
            CreditFlowError(f"{code} has no published version {version}", [{"field": "version", "message": "unknown"}])
        )
    product = view.product
    shown = {
        "code": product.code,
        "name": product.name,
        "owner": _tenant_codes(platform).get(product.tenant_id, "province"),
        "archetype": product.archetype,
        "versions": [v.version for v in published],
        "draft": product.draft,
        "published": None
        if chosen is None
        else {
            "version": chosen.version,
            "sha256": chosen.sha256,
            "published_at": chosen.published_at.isoformat(),
            "decisions": chosen.decisions,
            "config": chosen.config,
        },
    }
    click.echo(json.dumps(shown, ensure_ascii=False, indent=2))


def _tenant_codes(platform: Any) -> dict[int, str]:
    from sqlalchemy import select

    from engine.store.models import Tenant

    with platform.db.transaction() as session:
        return {tenant_id: code for tenant_id, code in session.execute(select(Tenant.id, Tenant.code))}


@products.command("publish")
@click.argument("code")
def products_publish(code: str) -> None:
    """Publish a product's current config as a new immutable version."""
    from engine.services.principal import Principal

    try:
        version = _platform().products.publish(Principal.system(), code)
    except CreditFlowError as exc:
        _fail(exc)
    click.echo(f"{code} version {version.version} ({version.sha256[:12]})")


@products.command("clone")
@click.argument("template")
@click.argument("code")
@click.option("--tenant", "tenant_code", required=True, help="The bank's tenant code.")
@click.option(
    "--overrides",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON Merge Patch file (a JSON object).",
)
def products_clone(template: str, code: str, tenant_code: str, overrides: Path | None) -> None:
    """Make a bank's local product CODE from a province TEMPLATE."""
    from engine import json_documents
    from engine.catalog.config import clone_problems

    patch: Any = {}
    if overrides is not None:
        try:  # read as strictly as the API reads a request body
            patch = json_documents.loads(overrides.read_bytes().decode("utf-8"))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            _fail(CreditFlowError(f"{overrides} is not valid JSON: {exc}"))
    problems = clone_problems(code, patch)  # what the clone service refuses, before anything else
    if problems:
        reasons = "; ".join(f"{p['field']} {p['message']}" for p in problems)
        _fail(CreditFlowError(f"cannot clone {template} into {code!r}: {reasons}"))
    platform = _platform()
    try:
        view = platform.products.clone(
            _tenant_principal(platform, tenant_code), template, code=code, name=None, overrides=patch
        )
    except CreditFlowError as exc:
        _fail(exc)
    click.echo(f"cloned {template} into {view.product.code}")


@products.command("diff")
@click.argument("code")
def products_diff(code: str) -> None:
    """Show a local product's overrides against its template."""
    from engine.services.principal import Principal

    try:
        click.echo(json.dumps(_platform().products.diff(Principal.system(), code), ensure_ascii=False, indent=2))
    except CreditFlowError as exc:
        _fail(exc)


@products.command("rebase")
@click.argument("code")
def products_rebase(code: str) -> None:
    """Move a local product onto its template's newest version; exit 1 if there are conflicts."""
    from engine.services.principal import Principal

    try:
        result = _platform().products.rebase(Principal.system(), code)
    except CreditFlowError as exc:
        _fail(exc)
    click.echo(f"{code}: template version {result['from_version']} -> {result['to_version']}")
    for conflict in result["conflicts"]:
        click.echo(
            f"  CONFLICT {conflict['path']}: template {conflict['template_before']!r} -> "
            f"{conflict['template_after']!r}, kept local {conflict['local']!r}",
            err=True,
        )
    if result["conflicts"]:
        sys.exit(1)


def _tenant_principal(platform: Any, tenant_code: str) -> Any:
    """Act for a bank from the command line (an operator's tool, like the API with that bank's user)."""
    from sqlalchemy import select

    from engine.services.principal import Principal
    from engine.store.models import Tenant

    with platform.db.transaction() as session:
        tenant = session.scalars(select(Tenant).where(Tenant.code == tenant_code)).first()
    if tenant is None:
        _fail(CreditFlowError(f"no tenant {tenant_code}", [{"field": "tenant", "message": "unknown"}]))
    return Principal(user_id=None, username=f"cli@{tenant_code}", tenant_id=tenant.id)


@main.group()
def calendar() -> None:
    """The business calendar: days, entered years and working hours (province-wide unless a bank is named)."""


@calendar.command("set")
@click.argument("day", type=click.DateTime(formats=["%Y-%m-%d"]))
@click.argument("kind", type=click.Choice(["workday", "holiday"]))
@click.option("--note", default="", help="e.g. 2027年元旦")
def calendar_set(day: Any, kind: str, note: str) -> None:
    """Mark DAY as a workday or a holiday for every bank."""
    from engine.services.principal import Principal

    _platform().calendars.set_day(Principal.system(), day.date(), kind == "workday", note)
    click.echo(f"{day.date()} is a {kind}")


@calendar.command("cover")
@click.argument("year", type=click.IntRange(2000, 2100))
def calendar_cover(year: int) -> None:
    """Declare YEAR's holidays and make-up days entered; its other days then follow plain weekends."""
    from engine.services.principal import Principal

    _platform().calendars.cover_year(Principal.system(), year)
    click.echo(f"{year} is entered")


@calendar.command("hours")
@click.argument("periods", nargs=-1, required=True)
@click.option("--tenant", "tenant_code", help="This bank's own hours (default: the province's, for every bank).")
def calendar_hours(periods: tuple[str, ...], tenant_code: str | None) -> None:
    """Set the working PERIODS, e.g. 08:30-12:00 13:30-17:30; time limits started afterwards run on them."""
    from engine.services.principal import Principal

    try:
        setting = _platform().calendars.set_hours(
            Principal.system(), [period.split("-") for period in periods], tenant_code
        )
    except CreditFlowError as exc:
        _fail(exc)
    spans = " ".join("-".join(period) for period in setting.periods)
    click.echo(f"working hours of {tenant_code or 'every bank'}: {spans} ({setting.minutes_per_day} minutes a day)")


def _organization(action: Callable[[Any, Any], Any]) -> Any:
    """Run one organisation operation as the system; a domain error ends the command with its problems."""
    from engine.services.principal import Principal

    try:
        return action(_platform().organization, Principal.system())
    except CreditFlowError as exc:
        _fail(exc)


def _describe_user(user: Any) -> str:
    roles = ", ".join(f"{r.role}@{r.org_unit_code or '*'}" for r in user.roles) or "no roles"
    state = "active" if user.is_active else "inactive"
    if user.is_active and user.locked_until is not None and user.locked_until > datetime.now(UTC):
        state = "locked"  # `users show` says until when; `users unlock` ends it
    return f"{user.username:<20} {user.tenant:<16} {user.org_unit_code or '-':<14} {state:<8} {roles}"


@main.group()
def org() -> None:
    """Organisation units: head office, branches, sub-branches and grids."""


@org.command("units")
@click.option("--tenant", "tenant_code", help="Only this tenant's units (default: every tenant).")
def org_units(tenant_code: str | None) -> None:
    """Show the unit tree."""
    for unit in _organization(lambda service, me: service.list_units(me, tenant_code)):
        click.echo(f"{unit.tenant:<16} {'  ' * unit.depth}{unit.code}  {unit.name} ({unit.kind})")


@org.command("add-unit")
@click.option("--tenant", "tenant_code", required=True)
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--kind", required=True, help="head_office, branch, sub_branch or grid.")
@click.option("--parent", "parent_code", help="The parent unit's code (none only for the head office).")
def org_add_unit(tenant_code: str, code: str, name: str, kind: str, parent_code: str | None) -> None:
    """Add a unit under its parent: a branch under the head office, a sub-branch under a branch, a grid under
    either."""
    unit = _organization(lambda service, me: service.create_unit(me, tenant_code, code, name, kind, parent_code))
    click.echo(f"created {unit.kind} {unit.code} (id {unit.id}) at {unit.path}")


@org.group("changes")
def org_changes() -> None:
    """The organisation's change trail (权限与配置变更留痕): who changed units, users, role grants, groups, the
    calendar, API keys and webhooks, when, from what to what."""


@org_changes.command("verify")
@click.option(
    "--tenant", "tenant_code", help="Only this tenant's chain (the province's code: its own and the province-wide)."
)
def org_changes_verify(tenant_code: str | None) -> None:
    """Recompute the hash chains of the organisation's change trail; exit 1 if one was tampered with, 2 if
    there is no such tenant."""
    _verify_changes(lambda platform: platform.org_changes, tenant_code, shared="province-wide")


@main.group()
def users() -> None:
    """Users and their role grants."""


@users.command("list")
@click.option("--tenant", "tenant_code", help="Only this tenant's users (default: every tenant).")
def users_list(tenant_code: str | None) -> None:
    """One line per user: tenant, home unit, state and roles."""

    def every_page(service: Any, me: Any) -> list[Any]:
        found: list[Any] = []
        while True:
            page, total = service.list_users(me, tenant_code, limit=200, offset=len(found))
            found += page
            if not page or len(found) >= total:
                return found

    for user in _organization(every_page):
        click.echo(_describe_user(user))


@users.command("show")
@click.argument("username")
def users_show(username: str) -> None:
    """A user's state: active, locked (until when, after how many failed logins), roles and groups."""
    user = _organization(lambda service, me: service.get_user(me, username))
    click.echo(_describe_user(user))
    click.echo(f"  name: {user.display_name}; service account: {'yes' if user.is_service else 'no'}")
    click.echo(f"  failed logins in a row: {user.failed_logins or 0}")
    locked = user.locked_until is not None and user.locked_until > datetime.now(UTC)
    click.echo(f"  locked until: {user.locked_until.isoformat() if locked else '-'}")
    temporary = user.temporary_password_expires_at
    click.echo(f"  temporary password (to be changed) until: {temporary.isoformat() if temporary else '-'}")
    click.echo(f"  groups: {', '.join(user.groups) or '-'}")


@users.command("add")
@click.option("--tenant", "tenant_code", required=True)
@click.option("--username", required=True)
@click.option("--name", "display_name", required=True)
@click.option("--unit", "unit_code", help="The home unit's code.")
@click.option("--service", "is_service", is_flag=True, help="An integration account: API keys only, no password.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def users_add(
    tenant_code: str, username: str, display_name: str, unit_code: str | None, is_service: bool, password_stdin: bool
) -> None:
    """Add a user; without --password-stdin a person gets a generated password, printed this once only."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    user, generated = _organization(
        lambda service, me: service.create_user(
            me, tenant_code, username, display_name, password, org_unit_code=unit_code, is_service=is_service
        )
    )
    click.echo(f"created user {user.username} (id {user.id}) in {user.tenant}")
    if generated:
        click.echo(f"password (shown only this once): {generated}")


@users.command("grant")
@click.argument("username")
@click.argument("role")
@click.option("--unit", "unit_code", help="The unit the role is held in (default: the whole tenant).")
def users_grant(username: str, role: str, unit_code: str | None) -> None:
    """Grant ROLE to USERNAME."""
    click.echo(_describe_user(_organization(lambda service, me: service.grant(me, username, role, unit_code))))


@users.command("revoke")
@click.argument("username")
@click.argument("role")
@click.option("--unit", "unit_code", help="The unit the role is held in (default: the whole tenant).")
def users_revoke(username: str, role: str, unit_code: str | None) -> None:
    """Take ROLE away from USERNAME."""
    click.echo(_describe_user(_organization(lambda service, me: service.revoke(me, username, role, unit_code))))


@users.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    """Block sign-in; the user's tokens stop working too."""
    click.echo(_describe_user(_organization(lambda service, me: service.deactivate_user(me, username))))


@users.command("activate")
@click.argument("username")
def users_activate(username: str) -> None:
    """Allow sign-in again."""
    click.echo(_describe_user(_organization(lambda service, me: service.activate_user(me, username))))


@users.command("unlock")
@click.argument("username")
def users_unlock(username: str) -> None:
    """Lift a lock-out after failed logins."""
    click.echo(_describe_user(_organization(lambda service, me: service.unlock_user(me, username))))


@users.command("set-password")
@click.argument("username")
@click.option("--generate", is_flag=True, help="Generate a strong password and print it, instead of reading one.")
@click.option("--permanent", is_flag=True, help="The user keeps it: no change at the next sign-in, no expiry.")
def users_set_password(username: str, generate: bool, permanent: bool) -> None:
    """Break glass: set USERNAME's password when no administrator can sign in to reset it.

    The password is read from standard input: typed twice without echo on a terminal, else its first
    line (scripts). The account is unlocked and signed out everywhere; unless --permanent the password
    is temporary: the user must change it at the next sign-in, and it expires after
    CREDITFLOW_TEMPORARY_PASSWORD_HOURS."""
    from engine.services.auth import generate_password

    if generate:
        password = generate_password()
    elif sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    user = _organization(lambda service, me: service.set_password(me, username, password, temporary=not permanent))
    if user.temporary_password_expires_at is None:
        click.echo(f"password of {user.username} set; the account is unlocked and signed out everywhere")
    else:
        until = user.temporary_password_expires_at.isoformat()
        click.echo(f"temporary password of {user.username} set: to be changed at the next sign-in, before {until}")
    if generate:
        click.echo(f"password (shown only this once): {password}")


@main.group()
def groups() -> None:
    """Candidate groups that tasks can be offered to (e.g. 贷审会)."""


@groups.command("add")
@click.option("--tenant", "tenant_code", required=True)
@click.option("--code", required=True)
@click.option("--name", required=True)
def groups_add(tenant_code: str, code: str, name: str) -> None:
    """Add an empty group."""
    group = _organization(lambda service, me: service.create_group(me, tenant_code, code, name))
    click.echo(f"created group {group.code} (id {group.id}) in {group.tenant}")


@groups.command("add-member")
@click.argument("group_code")
@click.argument("username")
@click.option("--tenant", "tenant_code", required=True, help="The group's tenant.")
def groups_add_member(group_code: str, username: str, tenant_code: str) -> None:
    """Put USERNAME (of the group's tenant) into group GROUP_CODE."""
    group = _organization(lambda service, me: service.add_member(me, group_code, username, tenant_code))
    click.echo(f"{group.code}: {', '.join(group.members)}")


@main.group()
def demo() -> None:
    """Demo data."""


@demo.command("seed")
@click.option("--password", default=None, help="Password for the demo users (default: creditflow-demo).")
@click.option("--json", "as_json", is_flag=True, help="Print the tenants and users created as JSON.")
def demo_seed(password: str | None, as_json: bool) -> None:
    """Create a province, two banks and their users; running it again changes nothing."""
    from engine.services.demo import DEFAULT_PASSWORD, seed_demo

    result = seed_demo(_platform(), password or DEFAULT_PASSWORD)
    if as_json:
        click.echo(json.dumps({"tenants": result.tenants, "users": result.users}, ensure_ascii=False, indent=2))
    else:
        click.echo(f"created {len(result.tenants)} tenants and {len(result.users)} users")


@main.group()
def definitions() -> None:
    """Process definitions."""


@definitions.command("deploy")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def definitions_deploy(files: tuple[Path, ...]) -> None:
    """Validate, lint and deploy BPMN/DMN files as one bundle."""
    from engine.services.principal import Principal

    platform = _platform()
    try:
        result = platform.definitions.deploy(Principal.system(), [(f.name, f.read_bytes()) for f in files])
    except CreditFlowError as exc:
        _fail(exc)
    state = "deployed" if result.created else "unchanged"
    for d in result.definitions:
        click.echo(f"{state}: {d.key} version {d.version} (id {d.id})")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.argument("instance_id")
def audit_verify(instance_id: str) -> None:
    """Recompute the hash chain of an instance's audit trail; exit 1 if it was tampered with, 2 if there
    is no such instance (a script must not read a typo as tampering)."""
    from engine.services.principal import Principal

    try:
        result = _platform().instances.verify_audit(Principal.system(), instance_id)
    except NotFound as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
    except CreditFlowError as exc:
        _fail(exc)
    _chain_verdict("", result.events, "events", result.problems)
    if not result.ok:
        sys.exit(1)


@main.group()
def pki() -> None:
    """The development seal PKI (production keys are configured with CREDITFLOW_SEAL_CONFIG)."""


@pki.command("init")
@click.option("--json", "as_json", is_flag=True, help="Print what exists as JSON.")
def pki_init(as_json: bool) -> None:
    """Create (or complete) the development CA, TSA and one seal certificate per tenant. TEST ONLY keys."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from engine.documents.pki import BankIdentity, init_pki
    from engine.store.models import Tenant

    platform = _platform()
    with platform.db.transaction() as session:
        banks = [BankIdentity(t.code, t.name) for t in session.scalars(select(Tenant).order_by(Tenant.id))]
    summary = init_pki(platform.settings.pki_path, banks, now=datetime.now(UTC))
    if as_json:
        click.echo(
            json.dumps(
                {"directory": str(summary.directory), "created": list(summary.created), "banks": list(summary.banks)},
                ensure_ascii=False,
            )
        )
        return
    click.echo(f"development PKI in {summary.directory} (TEST ONLY): {len(summary.banks)} bank seal(s)")
    click.echo(f"created: {', '.join(summary.created) or 'nothing, all present'}")


def _report(report: dict[str, Any], as_json: bool, ok: bool) -> None:
    """A verification report: JSON, or the verdict and one line per signature or check."""
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(report["summary"])
        for signature in report.get("signatures", []):
            click.echo(f"  - {signature['field_name']}: {signature['status']}: {signature['summary']}")
        for check in report.get("checks", []):
            click.echo(f"  - {check['name']}: {'ok' if check['ok'] else 'FAILED: ' + (check['reason'] or '')}")
    sys.exit(0 if ok else 1)


@main.group()
def documents() -> None:
    """Sealed contracts."""


@documents.command("verify")
@click.argument("file", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def documents_verify(file: Any, as_json: bool) -> None:
    """Check a sealed PDF's seals (signer, time, integrity, coverage); exit 1 unless valid and, for a
    copy of a stored contract, binding (not void); 2 when the trust roots (the seal PKI under
    CREDITFLOW_DATA_DIR or CREDITFLOW_PKI_DIR) are not found."""
    from engine.documents.pki import SealConfigError
    from engine.services.principal import Principal

    try:
        report = _platform().documents.verify_upload(Principal.system(), file.read())
    except CreditFlowError as exc:
        _fail(exc)
    except SealConfigError as exc:  # someone checking a contract handed to them got a traceback
        click.echo(f"error: {exc}; set CREDITFLOW_DATA_DIR or CREDITFLOW_PKI_DIR to the installation's", err=True)
        sys.exit(2)
    _report(report, as_json, report["status"] == "valid" and report.get("binding", True))


@main.group()
def archive() -> None:
    """Archived loan files."""


@archive.command("verify")
@click.argument("file", type=click.File("rb"))
@click.option("--ca", type=click.File("rb"), help="Trust this root (PEM) instead of the platform's.")
@click.option(
    "--at",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Check the newest timestamp as of this UTC time instead of now (will the file still verify then?).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
def archive_verify(file: Any, ca: Any, at: datetime | None, as_json: bool) -> None:
    """Check an archive bag: no missing or extra file, hashes, the bank's signature and the timestamps."""
    when = at.replace(tzinfo=UTC) if at is not None else None
    report = _platform().archives.verify_bytes(file.read(), ca.read() if ca is not None else None, when)
    _report(report, as_json, report["ok"])


@archive.command("renew")
@click.argument("instance_id")
def archive_renew(instance_id: str) -> None:
    """Renew an archive's timestamp now (the scheduler does it ahead of the TSA certificate's expiry)."""
    from engine.services.principal import Principal

    try:
        view = _platform().archives.renew_now(Principal.system(), instance_id)
    except CreditFlowError as exc:
        _fail(exc)
    expires = view.evidence_expires_at.isoformat() if view.evidence_expires_at else "unknown"
    click.echo(f"renewal {view.renewals} of {view.instance_id}: sha256 {view.sha256}, valid until {expires}")


@main.command()
@click.option("--once", is_flag=True, help="Run a single pass and exit (cron, tests).")
@click.option("--interval", default=2.0, show_default=True, type=float, help="Seconds between passes.")
def scheduler(once: bool, interval: float) -> None:
    """Run due jobs (BPMN timers, escalations, notifications); APScheduler only keeps time, the
    database decides what is due and which node does it. SIGTERM or Ctrl-C stops it gracefully: no new
    jobs, the running ones finish (CREDITFLOW_SHUTDOWN_GRACE_SECONDS), the rest go back to the queue."""
    import threading

    from engine.jobs.housekeeping import ensure_scheduled
    from engine.jobs.scheduler import Scheduler, run_pass
    from engine.jobs.stop_signals import on_stop_signals

    platform = _platform()
    if once:
        stop = threading.Event()
        on_stop_signals(stop.set)
        ensure_scheduled(platform)
        result = run_pass(platform, stop=stop)
        click.echo(f"{result.done} job(s) done of {result.acquired} due, in {result.seconds:.3f} s")
        if result.released:
            click.echo(f"stopped: {result.released} leased job(s) handed back to the queue")
        return
    node = Scheduler(platform, interval)
    on_stop_signals(node.request_stop)
    node.start()
    click.echo(f"scheduler running every {interval:g} s")
    sys.stdout.flush()
    node.stopping.wait()
    _stop_scheduler(node, platform)


def _stop_scheduler(node: Any, platform: Any) -> None:
    """The graceful end of a process running the scheduler: wait for the jobs running, say what became
    of the others; exit 1 at once if the grace period ran out first (rather than wait for the job)."""
    from engine.jobs.stop_signals import exit_now

    report = node.stop(platform.settings.shutdown_grace_seconds)
    click.echo(report.summary())
    if not report.finished:
        exit_now(1)


@main.group()
def jobs() -> None:
    """The job queue: what is due, what a node holds, what keeps failing."""


@jobs.command("list")
@click.option("--kind", help="Only jobs of this kind (timer, escalate, deliver, archive, housekeeping, ...).")
@click.option("--held", is_flag=True, help="Only jobs a node holds now (a lease).")
@click.option("--failing", is_flag=True, help="Only jobs that failed at least once.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def jobs_list(kind: str | None, held: bool, failing: bool, limit: int) -> None:
    """One line per job, the earliest due first: id, kind, due, attempts, retries left, holder, last error."""
    from sqlalchemy import select

    from engine.store.models import Job

    platform = _platform()
    now = platform.clock.now()
    stmt = select(Job).order_by(Job.due_at, Job.id).limit(limit)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    if held:
        stmt = stmt.where(Job.lock_expires_at > now)
    if failing:
        stmt = stmt.where(Job.attempts > 0, Job.last_error.is_not(None))
    with platform.db.transaction() as session:
        for job in session.scalars(stmt):
            holder = job.lock_owner if job.lock_expires_at is not None and job.lock_expires_at > now else "-"
            error = (job.last_error or "-").splitlines()[0][:80]
            click.echo(
                f"{job.id:>8} {job.kind:<14} {job.due_at.isoformat()} attempts={job.attempts} "
                f"retries_left={job.retries_left} holder={holder} {job.instance_id or '-'} {error}"
            )


@jobs.command("release")
@click.argument("job_id", type=int)
def jobs_release(job_id: int) -> None:
    """Take a job back from the node holding it (one that hangs or was cut off): due again now, and
    the holder can no longer finish it (its version moves on)."""
    from sqlalchemy import update

    from engine.store.models import Job

    platform = _platform()
    with platform.db.transaction(write=True) as session:
        released = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.lock_owner.is_not(None))
            .values(lock_owner=None, lock_expires_at=None, due_at=platform.clock.now(), version=Job.version + 1)
        )
    if released.rowcount != 1:
        click.echo(f"error: no job {job_id} held by a node", err=True)
        sys.exit(1)
    click.echo(f"job {job_id} released: due now")


@main.command()
def housekeeping() -> None:
    """Delete now what the nightly housekeeping job deletes (old idempotency keys, read notifications,
    delivered messages, expired sign-outs) and say how many of each."""
    from engine.jobs.housekeeping import sweep

    platform = _platform()
    with platform.db.transaction(write=True) as session:
        swept = sweep(session, platform.settings, platform.clock.now())
    for what, count in asdict(swept).items():
        click.echo(f"{what}: {count}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int, help="0 picks a free port.")
@click.option("--threads", default=8, show_default=True, type=int)
@click.option(
    "--scheduler/--no-scheduler",
    "with_scheduler",
    default=True,
    show_default=True,
    help="Also fire due timers in this process.",
)
def serve(host: str, port: int, threads: int, with_scheduler: bool) -> None:
    """Serve the HTTP API (waitress); prints one line once it accepts connections."""
    from waitress import create_server

    from api import create_app
    from api.request_ids import RequestIdFilter
    from engine.jobs.scheduler import Scheduler
    from engine.jobs.stop_signals import on_stop_signals

    for handler in logging.getLogger().handlers:  # "-" outside a request: the scheduler's lines
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    platform = _platform()
    server = create_server(create_app(platform), host=host, port=port, threads=threads, ident="creditflow")
    node = Scheduler(platform) if with_scheduler else None

    def stop_serving() -> None:
        if node is not None:
            node.request_stop()
        raise SystemExit(0)  # leaves waitress's loop, which then lets the requests in progress finish

    platform.documents.warm_up()  # the first contract should not wait for LibreOffice to start
    on_stop_signals(stop_serving)
    with contextlib.suppress(SystemExit):  # a stop before the loop began
        if node is not None:
            node.start()
        click.echo(f"CreditFlow API listening on http://{host}:{server.effective_port}/api/docs", nl=True)
        sys.stdout.flush()
        server.run()
    server.close()
    if node is not None:
        _stop_scheduler(node, platform)
    click.echo("CreditFlow API stopped")


if __name__ == "__main__":
    main()
