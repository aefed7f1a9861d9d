"""Helpers shared by the test suites: emulators and servers started on loopback."""
