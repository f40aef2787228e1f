"""Helpers the tests import: fakes, the daemon harness, the fault proxy, runners and strategies.

Nothing here is a test and pytest collects nothing here (no module is named test_*); a test module
imports from this package, never from another test module or from a conftest.
"""
