"""The landing page of managers: counts of what they manage, and their calls' figures."""

from flask import jsonify, render_template, url_for
from flask_login import current_user
from sqlalchemy import func, select

from portal import mail
from portal.dashboard import bp
from portal.dashboard.charts import activity_chart, figures_document, revenue_charts
from portal.dashboard.figures import (
    DAYS,
    account_counts,
    call_days,
    currencies,
    live_calls,
    low_balance,
    overdue_invoices,
    today_utc,
    top_destinations,
)
from portal.extensions import db
from portal.models import Role
from portal.security import (
    MANAGERS,
    STAFF,
    roles_required,
    visible_rate_groups,
    visible_taxes,
)


def _count(query) -> int:
    """COUNT(*) of a select."""
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """Counts of accounts, rate groups and taxes; the calls' figures; mail trouble."""
    counts, low_count = account_counts(current_user)
    today = today_utc()
    days = call_days(current_user, today)
    by_minutes, by_revenue = top_destinations(current_user, today)
    low_listed = low_balance(current_user)
    overdue_totals, overdue_listed = overdue_invoices(current_user, today)
    library = url_for("static", filename="vendor/chart-4.6.1.umd.min.js")
    return render_template(
        "dashboard/index.html",
        counts=counts,
        roles=[
            r
            for r in (Role.CUSTOMER, Role.RESELLER, Role.SUBADMIN, Role.ADMIN)
            if r in counts or r in (Role.CUSTOMER, Role.RESELLER)
        ],
        rate_groups=_count(visible_rate_groups(current_user)),
        taxes=_count(visible_taxes(current_user)),
        # The staff run the operator's mail server: they see what it could not deliver.
        undeliverable=mail.undeliverable_count() if current_user.role in STAFF else 0,
        window=DAYS,
        days=days,
        totals=_totals(days),
        currencies=currencies(days),
        activity_chart=activity_chart(days),
        revenue_charts=revenue_charts(days),
        chart_library=library,
        by_minutes=by_minutes,
        by_revenue=by_revenue,
        live_calls=live_calls(current_user),
        low_count=low_count,
        low_listed=low_listed,
        overdue_totals=overdue_totals,
        overdue_listed=overdue_listed,
    )


def _totals(days) -> dict:
    """The window's calls, answered calls, seconds, ASR (%) and ACD (seconds)."""
    calls = sum(day.calls for day in days)
    answered = sum(day.answered for day in days)
    seconds = sum(day.seconds for day in days)
    return {
        "calls": calls,
        "answered": answered,
        "minutes": round(seconds / 60, 1),
        "asr": round(100 * answered / calls, 1) if calls else None,
        "acd": round(seconds / answered) if answered else None,
    }


@bp.route("/figures.json")
@roles_required(*MANAGERS)
def figures():
    """The dashboard's per-day series as JSON (amounts as decimal strings), for other tools."""
    today = today_utc()
    days = call_days(current_user, today)
    return jsonify(figures_document(days, live_calls(current_user)))
