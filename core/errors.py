"""Exceptions raised by the specsearch core.

Every error a user can cause derives from :class:`SpecSearchError`, and its
message names the cause (the file, the sizes, the vocabulary that differs), so
the CLI and the TUI can show it as one line.  After any of them the process and
every already-loaded engine keep working.
"""

from __future__ import annotations


class SpecSearchError(Exception):
    """Base class of all specsearch errors."""


class ModelLoadError(SpecSearchError):
    """A model file could not be loaded."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model path does not exist (or is not a file)."""


class NotGGUFError(ModelLoadError):
    """The file exists but is not a GGUF file (wrong magic bytes)."""


class CorruptModelError(ModelLoadError):
    """The file is a GGUF file but truncated or otherwise unreadable."""


class IncompatibleVocabError(SpecSearchError):
    """A draft model's vocabulary does not match the target's."""


class ContextOverflowError(SpecSearchError):
    """A prompt (plus what must be generated after it) does not fit the context."""


class KVCacheFullError(SpecSearchError):
    """The KV cache has no room even after evicting every idle sequence."""
