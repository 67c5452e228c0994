"""The documents a change is carried by: the kjøreplan, the status board and the report.

Pure rendering over plain data: no Airflow import, no network. Markdown and
JSON are built in Python; HTML comes from Jinja2 templates with autoescaping on,
so runbook text can never become markup. Pictures are SVG built in Python.
"""
