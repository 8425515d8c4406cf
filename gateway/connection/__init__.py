"""Limits against hostile clients, enforced per connection below the ASGI app: how long a request head and a
request body may take, how many header fields and bytes a head may carry, how many connections a worker holds,
how long and how often a connection is kept alive.

gateway/settings/connection.py holds the configuration (``server.limits``), ``policy.py`` the decisions and the
replies (no uvicorn), ``protocol.py`` the uvicorn HTTP protocol that applies them.
"""
