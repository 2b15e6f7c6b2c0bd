"""Read-side queries for account lists: indexed prefix search and keyset pagination."""

import re
from dataclasses import dataclass

from sqlalchemy import Select, exists

from portal.extensions import db
from portal.models import Account, AccountSearchToken

MAX_SEARCH_WORDS = 5


@dataclass
class Page:
    """One page of a list: its rows and the cursor of the next page (None on the last)."""

    items: list
    next_before: int | None
    is_first: bool


def search_words(query: str) -> list[str]:
    """Lowercase words of a search box, as they are stored in the token index."""
    return [w for w in re.split(r"[\s,;]+", query.lower()) if w][:MAX_SEARCH_WORDS]


def prefix_condition(word: str) -> list:
    """Tokens starting with `word`: a range every backend serves from the index, plus exact LIKE."""
    # LIKE alone is not indexed under PostgreSQL's default collations; the range is. LIKE then
    # removes what a linguistic collation puts inside the range without the prefix.
    conditions = [
        AccountSearchToken.token >= word,
        AccountSearchToken.token.startswith(word, autoescape=True),
    ]
    if ord(word[-1]) < 0x10FFFF:
        conditions.append(AccountSearchToken.token < word[:-1] + chr(ord(word[-1]) + 1))
    return conditions


def search_customers(base: Select, query: str, before: int | None, per_page: int) -> Page:
    """Newest first; each search word must prefix a word of number, name, company or e-mail."""
    statement = base
    for word in search_words(query):
        statement = statement.where(
            exists().where(AccountSearchToken.account_id == Account.id, *prefix_condition(word))
        )
    if before:
        statement = statement.where(Account.id < before)
    statement = statement.order_by(Account.id.desc()).limit(per_page + 1)
    rows = list(db.session.scalars(statement).unique())
    has_more = len(rows) > per_page
    rows = rows[:per_page]
    return Page(rows, rows[-1].id if has_more else None, before is None)
