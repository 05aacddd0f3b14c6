"""specsearch.core: engine, speculative decoding, reward models, search (no UI)."""

from .api import ModelSpec, Solver
from .config import SearchConfig
from .engine import Engine, GenerateOutput, Generation, LoadOptions, ScoreRequest
from .errors import (
    ContextOverflowError,
    CorruptModelError,
    IncompatibleVocabError,
    KVCacheFullError,
    ModelLoadError,
    ModelNotFoundError,
    NotGGUFError,
    SpecSearchError,
)
from .events import CancelToken, SearchEvent
from .methods import METHODS, Method, method_names, register_method
from .prm import JudgePRM, RewardModel, StepTagPRM
from .sampling import SamplingParams
from .speculative import SpeculativeDecoder
from .tree import SearchResult, SearchStats, StepRecord, ThoughtNode

__all__ = [
    "CancelToken", "ContextOverflowError", "CorruptModelError", "Engine",
    "GenerateOutput", "Generation", "IncompatibleVocabError", "JudgePRM", "KVCacheFullError",
    "LoadOptions", "METHODS", "Method", "ModelLoadError", "ModelNotFoundError", "ModelSpec", "NotGGUFError",
    "RewardModel", "SamplingParams", "ScoreRequest", "SearchConfig", "SearchEvent",
    "SearchResult", "SearchStats", "Solver", "SpecSearchError", "SpeculativeDecoder", "StepRecord",
    "StepTagPRM", "ThoughtNode", "method_names", "register_method",
]
