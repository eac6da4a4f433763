"""Exercises: rebuild one function of each stage, checked against minillm's own.

    minillm exercise list | start NAME | check NAME | hint NAME | solution NAME

Read first: registry.py (the exercises), then source.py, workspace.py, cli.py.
"""
