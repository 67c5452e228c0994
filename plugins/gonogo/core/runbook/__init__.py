"""The runbook: its format (model, schema), reading it with positions (source,
loader, the parse cache) and checking it (rules, shell, shellcheck, templating, expect, graph).
"""
