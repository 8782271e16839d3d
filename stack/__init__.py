"""Runs sysnotify's parts as plain processes on loopback: for the demo, the tests and the benchmarks."""
