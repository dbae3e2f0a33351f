"""Test instruments that ship with Corral (for plugin authors' tests, benchmarks and demos).

- `corral.testing.jira`: a local Jira Cloud emulator (`corral jira-emulator`).
"""
