"""The email templates, shipped as package data and read through importlib.resources."""
