"""Call authorization with credit reservations, rating at hang-up, and the reaper."""

from datetime import timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from portal import mail
from portal.apikeys.service import refusal
from portal.billing.service import Posted, check_low_balance, post
from portal.calls import bundles, rollups, statements
from portal.calls.checks import (
    Decision,
    callers,
    decide_all,
    find_account,
    rate_dict,
)
from portal.calls.trunks import find_trunk_account, trunk_caller
from portal.calls.writers import one_writer
from portal.extensions import db
from portal.models import Account, AccountType, Call, CallCharge, CallStatus, EntryKind, utcnow
from portal.rules.addresses import source_key
from portal.rules.bundles import split_duration
from portal.rules.calls import call_taxes, charged_cost, taxed_charge
from portal.rules.rating import RateRow
from portal.transactions import ValidationFailed, lost_to_a_deadlock, transaction


class CallIdTaken(ValidationFailed):
    """The call id belongs to a call of an account the caller may not see."""


class CallEnded(ValidationFailed):
    """The call id belongs to a call that has already ended (or was reaped)."""


# How often an authorization decides again when its reservation lost a race (the account's
# funds or channels changed between its reads and its write); each loss means another request
# of the same account got through, so the retries end, and a burst that outlasts them is a 503.
ATTEMPTS = 50


class Busy(Exception):
    """The account's funds kept changing under the authorization: the softswitch should retry."""


class KeyRefused(Exception):
    """The API key may not be used (revoked, wrong address, inactive owner): `why`."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def try_call(owner, destination, account_number, explain=True) -> Decision:
    """Decide a call as authorize() would, writing nothing (the "Test a call" panel)."""
    try:
        connection = db.session.connection()
        decision = Decision()
        account = find_account(connection, owner, account_number, None, destination)
        decide_all(connection, account, destination, decision, explain=explain)
        return decision
    finally:
        db.session.rollback()


def authorize(
    owner,
    call_id,
    destination,
    account_number=None,
    sip_username=None,
    explain=False,
    key=None,
    *,
    connection,
    source_ip=None,
) -> Decision:
    """Decide a call; when allowed, reserve the cost of its longest possible duration."""
    # key: (key_id, client address) of an API key identified but not yet checked: its state
    # is read with the account (one statement instead of two) and checked first, KeyRefused.
    # connection: the call API's own, outside the Session (portal.calls.engine.authorize_call;
    # on PostgreSQL in autocommit); each write is committed here.
    try:
        for _attempt in range(ATTEMPTS):
            # Reads first, without locks; the one write re-checks what it relies on.
            decision = Decision()
            key_id = key[0] if key else None
            dialled = destination
            if source_ip is not None:
                account = _trunk_row(connection, owner, source_ip, destination, key_id)
            else:
                account = find_account(
                    connection, owner, account_number, sip_username, destination, key_id
                )
            if key is not None:
                account, last_used = _checked_key(account, key[1], connection)
            if source_ip is not None:
                account, dialled = trunk_caller(connection, owner, account, destination)
            decide_all(connection, account, dialled, decision, explain=explain)
            caller = (sip_username, source_ip)
            if _record(connection, call_id, account, caller, destination, decision):
                if key is not None:
                    decision.key_last_used = last_used
                return decision
    except IntegrityError:
        # The call id's UNIQUE constraint: a retried (or concurrent) request for a call already
        # decided gets the stored answer and changes nothing. No look-up first: retries are rare.
        existing = _existing(connection, owner, call_id)
        if existing is None:
            raise
        if existing.status in (CallStatus.ENDED, CallStatus.REAPED):
            raise CallEnded({"call_id": "This call has already ended."}) from None
        return _replay(existing)
    raise Busy


def _trunk_row(connection, owner, source_ip: str, destination: str, key_id):
    """find_trunk_account() for an address as sent; a row without an account if it is none."""
    source = source_key(source_ip) or "-"  # "-" sorts before every key: no trunk holds it
    return find_trunk_account(connection, owner, source, destination, key_id)


def _checked_key(row, client_ip: str, connection=None):
    """(the account or None, the key's last use) of a row read with its key; KeyRefused."""
    why = refusal(row, client_ip, connection)
    if why:
        raise KeyRefused(why)
    return (row if row.id is not None else None), row.key_last_used_at


def _existing(connection, owner, call_id: str):
    """The call already recorded under `call_id` (a row), or None; CallIdTaken if not visible."""
    # On the caller's connection: a second one from the pool while it holds one could wait
    # forever when every connection is held by a request doing the same.
    call = connection.execute(select(Call.__table__).where(Call.call_id == call_id)).first()
    if call is None or call.account_id is None:
        return call
    visible = connection.execute(
        callers(owner).with_only_columns(Account.id).where(Account.id == call.account_id)
    ).first()
    if visible is None:
        raise CallIdTaken({"call_id": "This call id is already taken."})
    return call


def _record(connection, call_id, account, caller, destination, decision: Decision) -> bool:
    """Write a decision: a refusal's row, or a live call with its reservation; False if stale."""
    sip_username, source_ip = caller  # who called: the SIP user, or the trunk's address
    values = {
        "call_id": call_id,
        "sip_username": sip_username or "",
        "source_ip": source_ip or "",
        "destination": destination,
        "translated_destination": decision.translated_destination,
        "status": CallStatus.LIVE if decision.allowed else CallStatus.REFUSED,
        "cause": decision.cause,
        "started_at": utcnow(),
        # The rate is kept with refusals too, so a retry replays the same answer.
        "rate_prefix": None,
        "rate_destination": "",
        "connect_cost": Decimal(0),
        "cost_per_minute": Decimal(0),
        "initial_increment": 0,
        "increment": 1,
        "max_duration_seconds": 0,
        "reserved": Decimal(0),
        "hangup_cause": "",
    }
    rate = decision.rate_row
    if rate is not None:
        values.update(
            rate_prefix=rate.prefix,
            rate_destination=rate.destination,
            connect_cost=rate.connect_cost,
            cost_per_minute=rate.cost_per_minute,
            initial_increment=rate.initial_increment,
            increment=rate.increment,
        )
    async_commit = current_app.config["CALLS_ASYNC_COMMIT"]
    if decision.allowed:
        # The longest call's debit: its charge, plus its taxes when prepaid (rules.calls); of
        # a call drawing on a bundle, only of the part past the bundle's seconds.
        paid = _paid_seconds(decision)
        reserve = taxed_charge(rate, paid, account.currency, decision.tax_rates)
        values.update(max_duration_seconds=decision.max_duration_seconds, reserved=reserve)
    binds = {f"call_{name}": value for name, value in values.items()}
    binds["call_account_id"] = account.id if account else None
    if decision.allowed:
        binds.update(_funds_binds(account, decision, reserve, values))
        if decision.bundle is not None:
            binds.update(bundles.binds(decision.bundle))
            if paid == 0:  # within the bundle: any funds do, as long as they did not drop
                binds["required"] = min(Decimal(0), decision.bundle.usable)
    # The transaction is the driver's own: the Session's commit would cost more than the
    # statements (a Session that holds objects has them expired below, as its commit would).
    driver = connection.connection.driver_connection
    postgresql = connection.dialect.name == "postgresql"
    bundle = decision.bundle
    if decision.allowed and (decision.levels or (bundle is not None and not postgresql)):
        written = _record_chain(connection, binds, decision, values["started_at"])
    elif postgresql:
        # One statement each: the UPDATE and INSERT commit together or not at all. In the
        # API's autocommit the statement is its own transaction; otherwise it is committed.
        if decision.allowed:
            statement = statements.RESERVE_AND_INSERT[async_commit]
            if bundle is not None:  # the bundle's seconds too (its period's row first if new)
                bundles.open_period(connection, bundle, binds)
                statement = bundles.RESERVE_HOLD_AND_INSERT[async_commit]
            written = statement.first(connection, binds) is not None
        else:
            statements.INSERT_REFUSAL[async_commit].rowcount(connection, binds)
            written = True
        if not driver.autocommit:
            driver.commit()
    else:
        with one_writer() as writer:
            writer.acquire()
            try:
                written = not decision.allowed or (
                    statements.RESERVE_ROWS.rowcount(connection, binds) == 1
                )
                if written:
                    statements.INSERT_CALL.rowcount(connection, binds)
                driver.commit()  # nothing written if the reservation lost its race
            except BaseException:
                driver.rollback()
                raise
    return written


def _paid_seconds(decision: Decision) -> int:
    """The seconds of an allowed call past what its bundle holds for it (set here), if any."""
    # The reseller levels may have cut the call shorter than the caller's bundle and funds.
    bundle = decision.bundle
    if bundle is None:
        return decision.max_duration_seconds
    bundle.seconds = min(bundle.available, decision.max_duration_seconds)
    return decision.max_duration_seconds - bundle.seconds


def _record_chain(connection, binds: dict, decision: Decision, now) -> bool:
    """A reseller's customer's live call: every level reserves, or none does; False if stale."""
    # Also a call drawing on a bundle (on SQLite, or with resellers): its seconds are held in
    # the same transaction, before the accounts are locked, as hang-ups lock them.
    # Several statements in one transaction: on PostgreSQL the API's autocommit connection is
    # taken out of autocommit for it. The rows are written first (a taken call id fails
    # before anything is locked), then the accounts are locked bottom-up, the caller first
    # and the root reseller last, as every chain call and hang-up takes them: two calls never
    # wait on each other's rows in opposite orders, and the rows every call of a reseller's
    # subtree shares (the resellers', the top one above all) are held for the shortest time.
    level_binds = []
    for level in decision.levels:
        reserve = taxed_charge(
            level.rate_row, decision.max_duration_seconds, level.currency, level.tax_rates
        )
        rate = level.rate_row
        level_binds.append(
            {
                "account_id": level.account_id,
                "required": max(reserve, level.needed),
                "reserve": reserve,
                "now": now,
                "call_call_id": binds["call_call_id"],
                "charge_account_id": level.account_id,
                "charge_level": level.level,
                "charge_rate_prefix": rate.prefix,
                "charge_connect_cost": rate.connect_cost,
                "charge_cost_per_minute": rate.cost_per_minute,
                "charge_initial_increment": rate.initial_increment,
                "charge_increment": rate.increment,
                "charge_reserved": reserve,
            }
        )
    bottom_up = [binds, *level_binds]
    driver = connection.connection.driver_connection
    postgresql = connection.dialect.name == "postgresql"
    with one_writer() as writer:
        writer.acquire()
        autocommit = postgresql and driver.autocommit
        if autocommit:
            driver.autocommit = False
        try:
            if postgresql and current_app.config["CALLS_ASYNC_COMMIT"]:
                statements.ASYNC_COMMIT_LOCAL.rowcount(connection, {})
            bundle = decision.bundle
            if bundle is None:
                statements.INSERT_CALL.rowcount(connection, binds)
            else:
                bundles.open_period(connection, bundle, binds)
                bundles.INSERT_CALL.rowcount(connection, binds)
            for charge in level_binds:
                statements.INSERT_CHARGE.rowcount(connection, charge)
            held = bundle is None or bundles.hold(connection, binds)
            for funds in bottom_up:
                if not held or statements.RESERVE_ROWS.rowcount(connection, funds) != 1:
                    driver.rollback()  # nothing reserved or written anywhere: decide again
                    return False
            driver.commit()
        except DBAPIError as error:
            driver.rollback()
            if lost_to_a_deadlock(error):
                return False  # nothing of it was kept: decide again, as a lost race
            raise
        except BaseException:
            driver.rollback()
            raise
        finally:
            if autocommit:
                driver.autocommit = True
    return True


def _funds_binds(account, decision: Decision, reserve: Decimal, values: dict) -> dict:
    """The binds of statements.RESERVE for a call reserving `reserve`."""
    return {
        "account_id": account.id,
        "required": max(reserve, decision.needed),
        "reserve": reserve,
        "now": values["started_at"],
    }


def _replay(call) -> Decision:
    """The decision stored with a call."""
    decision = Decision(
        allowed=call.status != CallStatus.REFUSED,
        cause=call.cause,
        translated_destination=call.translated_destination,
        max_duration_seconds=call.max_duration_seconds,
    )
    if call.rate_prefix is not None:
        decision.rate = rate_dict(_call_rate(call))
    return decision


def _call_rate(call) -> RateRow:
    """The rate a call was authorized with, as stored on the call."""
    return RateRow(
        call.rate_prefix,
        call.rate_destination,
        call.connect_cost,
        call.cost_per_minute,
        call.initial_increment,
        call.increment,
    )


def end_call(
    call: Call, duration_seconds: int, hangup_cause: str, status=CallStatus.ENDED
) -> Posted:
    """Rate a live call, post its one usage entry and free its reservation; again: no change."""
    for _attempt in range(ATTEMPTS):
        try:
            return _end_once(call, duration_seconds, hangup_cause, status)
        except DBAPIError as error:
            # Rolled back whole to break a deadlock with a parallel authorization (MariaDB's
            # foreign key checks lock parent rows): nothing was posted, so end it again.
            if not lost_to_a_deadlock(error):
                raise
            db.session.refresh(call)
    raise Busy


def _end_once(call: Call, duration_seconds: int, hangup_cause: str, status) -> Posted:
    """end_call() in one transaction."""
    posted = Posted()
    if call.status != CallStatus.LIVE:
        return posted
    # The softswitch cuts the call at max_duration; never bill past what was reserved.
    seconds = max(0, min(duration_seconds, call.max_duration_seconds))
    with one_writer() as writer, transaction():
        writer.acquire()
        account = db.session.get(Account, call.account_id)
        # Rated in 5 decimals, debited at the currency's minor unit (the call's cost is what
        # the ledger shows); a balance so stays payable exactly (no 11.5 JPY).
        # What its bundle held, the call gets free; the rest is rated as a call of its own.
        free, paid = split_duration(seconds, call.bundle_reserved_seconds)
        cost = charged_cost(_call_rate(call), paid, account.currency)
        # Claim the call: of concurrent ends of the same call, only one still finds it live.
        claimed = db.session.execute(
            update(Call)
            .where(Call.id == call.id, Call.status == CallStatus.LIVE)
            .values(
                status=status,
                ended_at=utcnow(),
                duration_seconds=seconds,
                hangup_cause=hangup_cause[:40],
                cost=cost,
                reserved=Decimal(0),
                free_seconds=free,
                bundle_reserved_seconds=0,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:
            return posted
        text = f"Call to {call.translated_destination} ({seconds} s)"
        if free:
            text = f"Call to {call.translated_destination} ({seconds} s, {free} s free)"
        if call.bundle_usage_id is not None:  # before the account: authorizations' lock order
            held = call.bundle_reserved_seconds
            db.session.execute(
                bundles.RELEASE, {"usage_id": call.bundle_usage_id, "used": free, "held": held}
            )
        # A live call's reservation never changes, so the one read with the call is exact.
        db.session.execute(
            statements.RELEASE, {"account_id": call.account_id, "release": call.reserved}
        )
        db.session.refresh(account)  # locked by RELEASE: fresh funds and alert flag
        _debit(account, cost, text, posted)
        levels = []
        if account.tenant_path:
            # Then the resellers above, bottom-up: the order authorizations lock them in. (An
            # account is never moved while it has live calls, so its path is the call's.)
            levels = _end_charges(call.id, seconds, text, posted)
        # Last, so the shared daily rows are held for the shortest time before the commit.
        rollups.count_call(call, seconds, cost, account, levels)
    db.session.refresh(call)
    mail.deliver_now(posted.mail)
    return posted


def _debit(account: Account, cost: Decimal, text: str, posted: Posted) -> None:
    """Post a call's cost (and a prepaid account's call taxes) to `account`; check its alert."""
    if cost > 0:
        posted.entries.append(post(account, EntryKind.USAGE, cost, text))
        if account.account_type == AccountType.PREPAID:
            posted.entries.extend(_post_call_taxes(account, cost, text))
    check_low_balance(account, posted)


def _end_charges(
    call_id: int, seconds: int, text: str, posted: Posted
) -> list[tuple[int, Decimal, str]]:
    """Rate and debit each reseller level at its own rate; (account id, cost, currency) of each."""
    # In end_call's transaction: every level's entry is posted with the caller's, or none is.
    charges = db.session.scalars(
        select(CallCharge).where(CallCharge.call_id == call_id).order_by(CallCharge.level)
    ).all()
    levels = []
    for charge in charges:
        db.session.execute(
            statements.RELEASE, {"account_id": charge.account_id, "release": charge.reserved}
        )
        reseller = db.session.get(Account, charge.account_id)
        db.session.refresh(reseller)  # locked by RELEASE
        rate = RateRow(
            charge.rate_prefix,
            "",
            charge.connect_cost,
            charge.cost_per_minute,
            charge.initial_increment,
            charge.increment,
        )
        charge.cost = charged_cost(rate, seconds, reseller.currency)
        charge.reserved = Decimal(0)
        _debit(reseller, charge.cost, text, posted)
        levels.append((charge.account_id, charge.cost, reseller.currency))
    return levels


def call_tax_line(tax) -> str:
    """A percentage tax as a prepaid call's tax entry and its statement line name it."""
    return f"{tax.name} ({tax.rate.normalize():f}%)"


def _post_call_taxes(account: Account, cost: Decimal, call_text: str) -> list:
    """A prepaid call's percentage taxes on its charged `cost`: one TAX entry each (not 0)."""
    # The account's taxes as they are at hang-up, in priority order, as invoices and receipts
    # take them; their fixed amounts go on the periodic statement, once per document.
    percentage = [
        tax for tax in sorted(account.taxes, key=lambda t: (t.priority, t.name)) if tax.rate
    ]
    amounts = call_taxes(cost, [tax.rate for tax in percentage], account.currency)
    entries = []
    for tax, amount in zip(percentage, amounts, strict=True):
        if amount:
            line = call_tax_line(tax)
            entry = post(account, EntryKind.TAX, amount, f"{line}: {call_text}")
            entry.tax_line = line[:120]
            entries.append(entry)
    return entries


def reap(now=None, grace_seconds: int | None = None) -> int:
    """Close live calls older than their max duration plus a grace, billed for the max duration."""
    now = now or utcnow()
    grace = timedelta(
        seconds=grace_seconds
        if grace_seconds is not None
        else current_app.config["CALL_REAP_GRACE_SECONDS"]
    )
    reaped = 0
    stale = list(
        db.session.scalars(
            select(Call).where(Call.status == CallStatus.LIVE).order_by(Call.id).limit(10000)
        )
    )
    for call in stale:
        if call.started_at + timedelta(seconds=call.max_duration_seconds) + grace < now:
            end_call(call, call.max_duration_seconds, "REAPED", CallStatus.REAPED)
            reaped += 1
    return reaped
