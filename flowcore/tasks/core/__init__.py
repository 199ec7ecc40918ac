"""Core tasks: functions, constants, collections, operators."""
