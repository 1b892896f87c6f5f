"""The fault matrix's fixtures, defined with its helpers in faults_support.py."""

from faults_support import guarded_db, guarded_server, hanging_listener, own_redis, tmpfs

__all__ = ["guarded_db", "guarded_server", "hanging_listener", "own_redis", "tmpfs"]
