"""The test suite; a package so that test code imports its helpers as `tests.support.*`."""
