"""Auditing locked images for known vulnerabilities: inventories, SBOMs, OSV records and the policy over them.

One module per concern, in the order data flows: ``policy`` (read with images.toml), ``layers`` and
``inventory`` (what an image's layers say is installed), ``sbom`` (what an attached SBOM says),
``versions`` and ``osv`` (whether a record affects a package), ``database`` (where records come
from), ``scan`` (one image, end to end), ``gate`` (the resolver's hook) and ``report`` (JSON,
SARIF). Only ``policy`` is imported on every run; the rest when a command audits.
"""
