"""The configuration's sections, one module each; gateway/config.py composes them into ``Settings``.

These modules import nothing else of the gateway, so every package can read its own section and
gateway/config.py can read them all without an import cycle.
"""
