"""imagelock: lock container images to digests, the way pip-tools locks Python packages."""

__version__ = "0.1.0"
