"""The archive: what every run leaves behind and what reads it back.

`tables` and `ledger` (runs, check results, audits, queried without re-reading notebooks),
`reports` (report files, never half-written), `html` (the report page), `index` (the
status board), `retention` (the prune, an action through the plan gate), `exporters`
(Nagios, JSON, Prometheus, and the text a person reads) and `printing` (history and one
run's checks for the command line).
"""
