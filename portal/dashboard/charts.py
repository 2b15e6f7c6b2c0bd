"""The dashboard's series as the charts (static/js/charts.js) and the JSON endpoint take them."""

from decimal import Decimal

from portal.dashboard.figures import Day, currencies
from portal.rules.currency import quantum


def _labels(days: list[Day]) -> list[str]:
    """The days as ISO dates."""
    return [day.day.isoformat() for day in days]


def amount_text(amount: Decimal, currency: str) -> str:
    """An amount as a plain decimal string at the currency's minor unit ("1234.50")."""
    return str(Decimal(amount).quantize(quantum(currency)))


def activity_chart(days: list[Day]) -> dict:
    """Calls (bars) and minutes (a line, on its own axis) per day."""
    return {
        "labels": _labels(days),
        "series": [
            {"label": "Calls", "data": [day.calls for day in days]},
            {
                "label": "Minutes",
                "data": [str(day.minutes) for day in days],
                "type": "line",
                "axis": "y1",
            },
        ],
    }


def revenue_charts(days: list[Day]) -> dict[str, dict]:
    """One chart of revenue per day for each currency (amounts are never converted)."""
    # Amounts go to the browser as decimal strings; only the drawing turns them into numbers.
    return {
        currency: {
            "labels": _labels(days),
            "series": [
                {
                    "label": f"Revenue ({currency})",
                    "data": [amount_text(day.revenue.get(currency, 0), currency) for day in days],
                }
            ],
        }
        for currency in currencies(days)
    }


def figures_document(days: list[Day], live: int) -> dict:
    """Every day of the window with its figures, and the live calls now."""
    return {
        "days": [
            {
                "day": day.day.isoformat(),
                "calls": day.calls,
                "answered": day.answered,
                "seconds": day.seconds,
                "revenue": {
                    currency: amount_text(amount, currency)
                    for currency, amount in day.revenue.items()
                },
            }
            for day in days
        ],
        "currencies": currencies(days),
        "live_calls": live,
    }
