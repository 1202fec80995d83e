"""Schema revisions, oldest first: ``v0001_baseline``, ``v0002_governance``,
``v0003_request_log``."""
