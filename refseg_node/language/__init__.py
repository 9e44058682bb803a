"""The words of a command.

``command_parser`` (command -> expression) and ``queries`` (a query prepared once).
"""
