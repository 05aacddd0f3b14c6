"""specsearch.models: catalog, Hub downloads, offline pack, the local registry (no UI).

Where files go: ``store`` (per-repo Hub folders, imports that never overwrite);
the registry file, its lock and its shape checks: ``registry_file``; one model's
record and the range checks of its load settings: ``entry``; partial downloads
and ``models clean``: ``partials``.
"""

from .recommended import CatalogEntry, catalog
from .download import ChecksumMismatchError, DownloadCancelled, DownloadError, pull
from .pack import PackNotInstalledError, assemble_offline_pack
from .registry import (ROLES, InsufficientDiskError, ModelEntry, ModelNotRegisteredError, NameTakenError, Registry,
                       VerifyResult, check_pair)
from .store import UnsafeNameError


def compatible_drafts(large_name: str) -> list[ModelEntry]:
    """Installed models that can draft for ``large_name`` (same vocabulary, smaller)."""
    return Registry.load().compatible_drafts(large_name)


__all__ = [
    "CatalogEntry", "ChecksumMismatchError", "DownloadCancelled", "DownloadError", "InsufficientDiskError",
    "ModelEntry", "ModelNotRegisteredError", "NameTakenError", "PackNotInstalledError", "ROLES", "Registry", "VerifyResult",
    "UnsafeNameError", "assemble_offline_pack", "catalog", "check_pair", "compatible_drafts", "pull",
]
