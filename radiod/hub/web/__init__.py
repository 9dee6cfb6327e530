"""The hub's web console: server-rendered Vietnamese pages (Starlette, Jinja2) over the recorder's database."""
