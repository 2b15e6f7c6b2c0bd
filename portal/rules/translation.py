"""Number translation rules: `match/replace` pairs applied in order to a dialled number."""

import re

_MATCH = re.compile(r"^(\*|\+?[0-9#]+)$")
_REPLACE = re.compile(r"^(\*|\+?[0-9#]*)$")
MAX_RULES = 50


class TranslationError(ValueError):
    """A translation rule list is malformed; the message says which rule and why."""


def parse_rules(text: str) -> list[tuple[str, str]]:
    """Parse `011/2222,+/00` into [("011", "2222"), ("+", "00")]; TranslationError if malformed."""
    text = (text or "").strip()
    if not text:
        return []
    rules = []
    for position, raw in enumerate(text.split(","), start=1):
        rule = raw.strip().strip('"').strip()
        if rule.count("/") != 1:
            raise TranslationError(
                f'Rule {position} "{rule}" must have the form match/replace, e.g. 011/2222.'
            )
        match, replace = (part.strip() for part in rule.split("/"))
        if match == "+":
            pass  # a bare "+" is a valid prefix (international format)
        elif not _MATCH.match(match):
            raise TranslationError(
                f'Rule {position}: "{match}" is not a valid prefix '
                "(digits, an optional leading +, or *)."
            )
        if not _REPLACE.match(replace):
            raise TranslationError(
                f'Rule {position}: "{replace}" is not a valid replacement '
                "(digits, an optional leading +, * or empty)."
            )
        if match == "*" and replace in ("", "*"):
            raise TranslationError(f'Rule {position} "{rule}" does nothing.')
        rules.append((match, replace))
    if len(rules) > MAX_RULES:
        raise TranslationError(f"At most {MAX_RULES} translation rules are allowed.")
    return rules


def translate(number: str, rules: list[tuple[str, str]]) -> str:
    """Apply the rules in order and cumulatively to `number`."""
    for match, replace in rules:
        if match == "*":
            number = replace + number
        elif number.startswith(match):
            rest = number[len(match) :]
            number = rest if replace in ("", "*") else replace + rest
    return number
