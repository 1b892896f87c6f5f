"""Log triage in one streaming pass: levels, error patterns and rate-limit signals.

What `zcat | grep ERROR | awk | sort | uniq -c | sort -rn` answers at 3 AM, in one pass
that keeps memory flat whatever the size of the logs. The files are read in blocks of
bytes and the regular expressions run over whole blocks (in C), so Python only handles
the lines that matter: error lines, and lines at the edge of the time window. A block
whose stamps all fall before the window is dropped and one wholly inside it is kept,
each after parsing two stamps; only a block across the window's start is filtered line
by line. `scan()` spreads a large set of files over the cores, in parts of files.

That fast path reads `plain` logs: a timestamp at the start of a line, ISO 8601
(`2026-11-23T14:02:11Z`, `2026-11-23 14:02:11,123`, optionally in brackets), syslog
(`Nov 23 14:02:11`, year assumed) or one of the profile's, then a capital level word.
Lines without one (tracebacks, continuations) belong to the entry above and are not
counted on their own. Other formats (`formats.py`: logfmt, JSON lines, Python logging,
logback/log4j, syslog RFC 3164 and 5424, nginx/Apache access logs) are read line by line
into the same counts; `auto` tells each file's format from its first lines (`detect.py`),
and a file in no known format is named (`Triage.unrecognized`) rather than read as 0 %.

For checks that run every few minutes, `Offsets` remembers how far each file was read,
by a fingerprint of its first bytes rather than by name: a file renamed (and even
compressed) by rotation is recognised and continued, a truncated one is read again from
the start, so no line is lost or counted twice.
"""

from opslib.probes.logscan.detect import AUTO, detect, file_format
from opslib.probes.logscan.formats import FORMAT_NAMES
from opslib.probes.logscan.offsets import Offsets
from opslib.probes.logscan.parallel import scan
from opslib.probes.logscan.patterns import normalize, normalize_request
from opslib.probes.logscan.reading import matching_lines
from opslib.probes.logscan.results import Pattern, Triage
from opslib.probes.logscan.scanner import Scanner
from opslib.probes.logscan.stamps import line_shapes, parse_stamp

__all__ = [
    "AUTO",
    "FORMAT_NAMES",
    "Offsets",
    "Pattern",
    "Scanner",
    "Triage",
    "detect",
    "file_format",
    "line_shapes",
    "matching_lines",
    "normalize",
    "normalize_request",
    "parse_stamp",
    "scan",
]
