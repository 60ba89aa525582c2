"""``python -m airflow_provider_coupa_ihr.testing``: the same as the ``coupa-emulator`` command."""

from airflow_provider_coupa_ihr.testing.cli import main

raise SystemExit(main())
