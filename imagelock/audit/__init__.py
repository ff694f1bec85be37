"""Auditing locked images for known vulnerabilities: inventories, SBOMs, OSV records and the policy over them.

One module per concern: ``versions`` (each ecosystem's version ordering). Nothing here is imported
unless a command audits.
"""
