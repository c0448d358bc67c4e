"""The TA dashboard: server-rendered pages (Jinja2, a little htmx) over the staff services."""
