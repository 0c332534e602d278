"""The ``perfsage`` command line: thin commands over the library packages."""
