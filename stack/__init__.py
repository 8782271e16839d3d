"""Runs sysnotify's parts as plain processes on loopback: demo, tests and benchmarks."""
