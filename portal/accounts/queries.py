"""Read-side queries for account lists: indexed prefix search and keyset pagination."""

import re
from dataclasses import dataclass

from sqlalchemy import Select, exists, func, select

from portal.extensions import db
from portal.models import Account, AccountSearchToken

MAX_SEARCH_WORDS = 5
# Searches start from the token index when a word is this rare, else they walk the list newest
# first (which meets a page of matches quickly because the word is common).
RARE_WORD_TOKENS = 2000


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


def _rarest_word(words: list[str]) -> str | None:
    """The word that starts the fewest tokens, if at most RARE_WORD_TOKENS (one query)."""
    counts = [
        select(func.count())
        .select_from(
            select(AccountSearchToken.account_id)
            .where(*prefix_condition(word))
            .limit(RARE_WORD_TOKENS + 1)
            .subquery()
        )
        .scalar_subquery()
        for word in words
    ]
    if not counts:
        return None
    count, word = min(zip(db.session.execute(select(*counts)).one(), words, strict=True))
    return word if count <= RARE_WORD_TOKENS else None


def filter_accounts(base: Select, query: str) -> Select:
    """`base` narrowed to accounts where each search word prefixes a word of theirs."""
    statement = base
    words = search_words(query)
    for word in words:
        statement = statement.where(
            exists().where(AccountSearchToken.account_id == Account.id, *prefix_condition(word))
        )
    # SQLite runs EXISTS as a check on each account in id order, reading the whole table when
    # few accounts match; PostgreSQL's planner picks the driving side itself from statistics.
    rare = _rarest_word(words) if db.engine.dialect.name == "sqlite" else None
    if rare is not None:
        # Drive the query from the accounts this word finds (at most RARE_WORD_TOKENS, sorted
        # by the backend) instead of walking every account in id order looking for matches.
        statement = statement.where(
            Account.id.in_(select(AccountSearchToken.account_id).where(*prefix_condition(rare)))
        )
    return statement


def search_accounts(base: Select, query: str, before: int | None, per_page: int) -> Page:
    """Newest first; each search word must prefix a word of number, name, company or e-mail."""
    statement = filter_accounts(base, query)
    if before:
        statement = statement.where(Account.id < before)
    statement = statement.order_by(Account.id.desc()).limit(per_page + 1)
    rows = list(db.session.scalars(statement).unique())
    has_more = len(rows) > per_page
    rows = rows[:per_page]
    return Page(rows, rows[-1].id if has_more else None, before is None)
