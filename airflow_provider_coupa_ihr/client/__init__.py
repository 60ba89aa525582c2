"""An Airflow-free client for Coupa's integration APIs.

Pure pieces (``records``, ``query``, ``retry``, ``auth``, ``errors``) hold every decision; ``sync`` and ``aio``
are thin I/O loops around them, so the sync and async clients cannot drift apart.
"""
