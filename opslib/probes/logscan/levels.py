"""Level words as logs write them, and the one name each is counted under.

Loggers disagree on spelling (`ERROR`, `error`, `Error`, syslog's `err`), on numbers
(pino and bunyan write 50 for error) and on severities (a syslog PRI carries one in its
last three bits). The triage counts them under one name each, so an error rate reads the
same whoever wrote the log; a word no table knows keeps its own (upper-cased) name rather
than being guessed into one.
"""

from __future__ import annotations

TRACE, DEBUG, INFO, NOTICE, WARNING = "TRACE", "DEBUG", "INFO", "NOTICE", "WARNING"
ERROR, CRITICAL, ALERT, EMERGENCY, FATAL = "ERROR", "CRITICAL", "ALERT", "EMERGENCY", "FATAL"
NO_LEVEL = "(none)"  # an entry of a known format that says no level (most syslog lines)
# the levels whose lines are errors: syslog's severities 0-3 and every logger's error/fatal
ERROR_NAMES = frozenset({ERROR, CRITICAL, ALERT, EMERGENCY, FATAL})

# every spelling, lower-cased, and the name it counts under
ALIASES: dict[str, str] = {
    "trace": TRACE, "debug": DEBUG, "info": INFO, "notice": NOTICE,
    "warn": WARNING, "warning": WARNING,
    "err": ERROR, "error": ERROR, "crit": CRITICAL, "critical": CRITICAL,
    "alert": ALERT, "emerg": EMERGENCY, "emergency": EMERGENCY, "panic": EMERGENCY,
    "fatal": FATAL,
}  # fmt: skip
# a level word in any case, as a regex (bytes); longest spellings first
LEVEL_WORD = (
    rb"(?i:trace|debug|info|notice|warning|warn|error|err|critical|crit|alert"
    rb"|emergency|emerg|panic|fatal)"
)
# the level words a capital spelling makes a level anywhere in a message (`... ERROR ...`),
# as the plain format reads them; a lower-case word, or a short one (ERR, ALERT), only
# where a level stands (`error: ...`, `<alert> ...`): "sending ALERT to pager" is no alert
UPPER_LEVEL_WORD = rb"(?:DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|CRITICAL|FATAL)"
# syslog severity (PRI % 8, RFC 5424 section 6.2.1), also journald's PRIORITY
SEVERITIES = (EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG)
# pino and bunyan: 10 trace, 20 debug, 30 info, 40 warn, 50 error, 60 fatal
_NUMBERED = {1: TRACE, 2: DEBUG, 3: INFO, 4: WARNING, 5: ERROR, 6: FATAL}


_NAMED: dict[str | bytes, str] = {}  # the words seen, read once each
_NAMED_KEPT = 1024


def level_named(word: str | bytes) -> str:
    """The name a level word counts under (`err` -> ERROR); an unknown word is its own
    name, upper-cased, so a table shows it instead of hiding it."""
    name = _NAMED.get(word)
    if name is None:
        if len(_NAMED) > _NAMED_KEPT:
            _NAMED.clear()
        name = _NAMED[word] = _named(word)
    return name


def _named(word: str | bytes) -> str:
    text = word.decode("ascii", "replace") if isinstance(word, bytes) else word
    text = text.strip()
    name = ALIASES.get(text.lower())
    if name is not None:
        return name
    if text.isdigit():
        return level_numbered(int(text))
    return text.upper()[:20] or NO_LEVEL


def level_numbered(number: float) -> str:
    """A pino/bunyan numeric level: 10 trace ... 60 fatal, a custom level in between
    counted with the one below it (35 is still info)."""
    return _NUMBERED.get(min(max(int(number) // 10, 1), 6), INFO)
