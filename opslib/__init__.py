"""opslib: executable operations runbooks for data pipelines.

Probes measure, checks judge, actions change (only when asked), and the runner turns a
notebook execution into an archived report and a monitoring-grade exit code.
"""

__version__ = "0.1.0"
