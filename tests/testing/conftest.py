"""Fixtures for the emulator tests; the helpers live in ``emulator_helpers`` (a uniquely named module, so test
modules import them without clashing with other directories' conftest files)."""

from emulator_helpers import api, coupa_emulator_options, xml_api

__all__ = ["api", "coupa_emulator_options", "xml_api"]
