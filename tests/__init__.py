"""The test suite; helpers live beside the tests and are imported as `tests.<module>`."""
