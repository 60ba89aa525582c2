"""Apache Airflow provider for Coupa's Integration History Record (IHR) API.

Kept import-light on purpose: DAG files import operators from this package and are parsed every few seconds,
so nothing here may pull in an HTTP library.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
