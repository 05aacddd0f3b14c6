"""Learned PRM heads: a small classifier over a GGUF backbone's hidden states.

A head reads the backbone's final (normed) hidden state at the last token of
each step -- the token that carries the step delimiter -- optionally joined
with cheap features the same pass gives (the step's mean and minimum token
log-probability, its length), and returns the calibrated probability that
the step is correct.  Value-head PRMs (a linear or MLP head on a causal LM's
hidden states) run through the same interface: a head file holds the layers.

Head files are ``.npz`` archives: a JSON ``meta`` string plus float arrays.
``meta`` records the backbone's SHA-256 and hidden size, the prompt format
and the feature list, so loading a head against another backbone fails with
one line instead of scoring nonsense.  Heads that ship with specsearch live
in ``core/data/heads`` and are found by the backbone's SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import atomic_write_bytes
from .config import SearchConfig
from .engine import Engine, HiddenRequest
from .errors import SpecSearchError
from .prm import PRMKind, register_prm_kind

HEAD_FORMAT = "specsearch-prm-head"
HEAD_VERSION = 1
FEATURES = ("hidden", "logprob_mean", "logprob_min", "log_tokens")
"""hidden: the hidden state at the step's last token; logprob_mean/min: of the
step's own tokens (delimiter excluded) under the backbone; log_tokens: log(1 + step length)."""
OUTPUTS = ("sigmoid", "softmax2")
"""sigmoid: one logit, P(correct) = sigmoid(z); softmax2: two logits, P(correct) = softmax(z)[1]."""


class HeadError(SpecSearchError):
    """A head file is missing, unreadable or made for another backbone."""


# ------------------------------------------------------------- prompts ---
@dataclass(frozen=True)
class StepLayout:
    """Tokens of a question and its steps, with where each step ends."""

    tokens: list[int]
    ends: list[int]  # index of each step's last token (the one read by the head)
    starts: list[int]  # index of each step's first token


def drafter_chat_layout(engine: Engine, question: str, steps: Sequence[str], meta: dict[str, Any]) -> StepLayout:
    """The prompt the drafter sees in a search: chat template, system prompt,
    question, then the steps so far each followed by the delimiter, so the
    hidden state a head is trained on is the one the drafter computes."""
    system = meta.get("system_prompt", SearchConfig().system_prompt)
    delimiter = meta.get("delimiter", SearchConfig().delimiter)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    tokens = engine.chat_tokens(messages)
    starts, ends = [], []
    for step in steps:
        # Each step tokenised on its own, as the drafter wrote it token by token
        # after the previous delimiter.
        chunk = engine.tokenize(step.strip() + delimiter, add_special=False)
        starts.append(len(tokens))
        tokens += chunk
        ends.append(len(tokens) - 1)
    return StepLayout(tokens, ends, starts)


SKYWORK_STEP_TAG = "\n"
QWEN_PRM_STEP_TAG = "<extra_0>"
QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def step_tag_token(engine: Engine, tag: str, prompt_format: str) -> int:
    """The one token a value-head PRM is read at; a clear error when the vocabulary splits it."""
    ids = engine.tokenize(tag, add_special=False)
    if len(ids) != 1:
        raise HeadError(
            f"prompt format {prompt_format} reads each step's reward at the token {tag!r}, but "
            f"{Path(engine.path).name} has no single token for it ({len(ids)} tokens): use the GGUF "
            "converted from that reward model's own checkpoint as the backbone"
        )
    return ids[0]


def skywork_layout(engine: Engine, question: str, steps: Sequence[str], meta: dict[str, Any]) -> StepLayout:
    """Skywork-o1-Open-PRM's input (``prepare_input`` of SkyworkAI/skywork-o1-prm-inference,
    step_token "\\n"): BOS, the question and "\\n" tokenised together, then every line of
    the solution tokenised on its own and followed by the "\\n" token.  The value head is
    read at a step's last "\\n"; the inner newlines of a multi-line step are step tags too,
    as in Skywork's own input, where every line is a step."""
    tag = meta.get("step_separator", SKYWORK_STEP_TAG)
    sep = step_tag_token(engine, tag, "skywork")
    bos = engine.facts.bos
    tokens = ([bos] if meta.get("add_bos", True) and bos >= 0 else []) + engine.tokenize(
        question + "\n", add_special=False)
    starts, ends = [], []
    for step in steps:
        starts.append(len(tokens))
        for line in step.strip().split(tag):  # an empty line gives the tag alone, as in Skywork's code
            tokens += engine.tokenize(line, add_special=False) + [sep]
        ends.append(len(tokens) - 1)
    return StepLayout(tokens, ends, starts)


def qwen_math_prm_layout(engine: Engine, question: str, steps: Sequence[str], meta: dict[str, Any]) -> StepLayout:
    """Qwen2.5-Math-PRM's input (its model card): the chat template with the system prompt
    "Please reason step by step, and put your final answer within \\boxed{}.", the question
    as the user turn, and the assistant turn made of the steps each followed by
    ``<extra_0>``; the head is read at each ``<extra_0>``.  The step tag is a special
    token, so the steps tokenise apart from it exactly as inside the rendered chat."""
    sep = step_tag_token(engine, meta.get("step_separator", QWEN_PRM_STEP_TAG), "qwen-math-prm")
    system = meta.get("system_prompt", QWEN_PRM_SYSTEM)
    tokens = engine.chat_tokens([{"role": "system", "content": system}, {"role": "user", "content": question}])
    starts, ends = [], []
    for step in steps:
        starts.append(len(tokens))
        tokens += engine.tokenize(step.strip(), add_special=False) + [sep]
        ends.append(len(tokens) - 1)
    return StepLayout(tokens, ends, starts)


PROMPT_FORMATS: dict[str, Callable[[Engine, str, Sequence[str], dict[str, Any]], StepLayout]] = {
    "drafter-chat": drafter_chat_layout,
    "skywork": skywork_layout,
    "qwen-math-prm": qwen_math_prm_layout,
}


# ---------------------------------------------------------------- head ---
@dataclass
class Head:
    backbone_sha256: str
    hidden_size: int
    prompt_format: str = "drafter-chat"
    features: tuple[str, ...] = ("hidden",)
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """(W [in, out], b [out]) applied in turn, ReLU between layers; the first
    layer's input is the standardised feature vector."""
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    output: str = "sigmoid"
    meta: dict[str, Any] = field(default_factory=dict)
    """Prompt settings (system_prompt, delimiter), how it was trained, what it scores."""

    @property
    def n_features(self) -> int:
        return self.hidden_size * ("hidden" in self.features) + sum(f != "hidden" for f in self.features)

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.mean is not None:
            x = (x - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(step correct) for each row of features."""
        z = self.logits(x)
        if self.output == "softmax2":
            z = z[:, 1] - z[:, 0]
        else:
            z = z[:, 0]
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    # ---------------------------------------------------------- files ---
    def save(self, path: str | os.PathLike[str]) -> None:
        meta = {
            "format": HEAD_FORMAT, "version": HEAD_VERSION, "backbone_sha256": self.backbone_sha256,
            "hidden_size": self.hidden_size, "prompt_format": self.prompt_format,
            "features": list(self.features), "output": self.output, "n_layers": len(self.layers),
            **self.meta,
        }
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
        if self.mean is not None:
            arrays["mean"], arrays["scale"] = self.mean.astype(np.float32), self.scale.astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            arrays[f"w{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Head":
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except FileNotFoundError:
            raise HeadError(f"head file {path} does not exist") from None
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise HeadError(f"{path} is not a readable head file ({exc})") from None
        if meta.get("format") != HEAD_FORMAT or meta.get("version") != HEAD_VERSION:
            raise HeadError(f"{path} is not a {HEAD_FORMAT} v{HEAD_VERSION} file")
        try:
            layers = [(arrays[f"w{i}"].astype(np.float64), arrays[f"b{i}"].astype(np.float64))
                      for i in range(int(meta["n_layers"]))]
            head = cls(
                backbone_sha256=str(meta["backbone_sha256"]), hidden_size=int(meta["hidden_size"]),
                prompt_format=str(meta["prompt_format"]), features=tuple(meta["features"]), layers=layers,
                mean=arrays["mean"].astype(np.float64) if "mean" in arrays else None,
                scale=arrays["scale"].astype(np.float64) if "scale" in arrays else None,
                output=str(meta["output"]),
                meta={k: v for k, v in meta.items() if k not in _CORE_META},
            )
        except KeyError as exc:
            raise HeadError(f"head file {path} lacks {exc}") from None
        head.validate(str(path))
        return head

    def validate(self, where: str = "head") -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise HeadError(f"{where}: unknown features {unknown}; known: {', '.join(FEATURES)}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise HeadError(f"{where}: unknown prompt format {self.prompt_format!r}")
        if self.output not in OUTPUTS or not self.layers:
            raise HeadError(f"{where}: needs at least one layer and output sigmoid or softmax2")
        width = self.n_features
        for w, b in self.layers:
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise HeadError(f"{where}: layer shapes do not chain (expected input width {width})")
            width = w.shape[1]
        if width != (2 if self.output == "softmax2" else 1):
            raise HeadError(f"{where}: the last layer must give {2 if self.output == 'softmax2' else 1} logits")


_CORE_META = {"format", "version", "backbone_sha256", "hidden_size", "prompt_format", "features", "output", "n_layers"}


# ------------------------------------------------------------ backbone ---
_sha_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a model file (cached per path, size and modification time)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def shipped_heads() -> list[Path]:
    folder = resources.files("specsearch.core").joinpath("data").joinpath("heads")
    try:
        return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".npz"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def find_head(backbone_sha256: str) -> Path | None:
    """The shipped head trained on this backbone, if any."""
    for path in shipped_heads():
        try:
            if Head.load(path).backbone_sha256 == backbone_sha256:
                return path
        except HeadError:
            continue
    return None


# ----------------------------------------------------------------- PRM ---
def _feature_row(names: Sequence[str], hidden: np.ndarray, step_logprobs: np.ndarray | None, n_tokens: int) -> np.ndarray:
    """One step's feature vector, in the head's feature order."""
    parts: list[np.ndarray] = []
    for name in names:
        if name == "hidden":
            parts.append(hidden.astype(np.float64))
        elif name == "logprob_mean":
            parts.append(np.array([step_logprobs.mean()]))
        elif name == "logprob_min":
            parts.append(np.array([step_logprobs.min()]))
        elif name == "log_tokens":
            parts.append(np.array([np.log1p(n_tokens)]))
    return np.concatenate(parts)


def _wants_logprobs(names: Sequence[str]) -> bool:
    return any(f in ("logprob_mean", "logprob_min") for f in names)


def step_features(engine: Engine, head_features: Sequence[str], layouts: Sequence[StepLayout],
                  last_only: bool) -> list[np.ndarray]:
    """Feature rows [steps, n_features] per layout (only its last step when ``last_only``)."""
    want_lp = _wants_logprobs(head_features)
    requests = []
    for lay in layouts:
        ends = lay.ends[-1:] if last_only else lay.ends
        first = lay.starts[-1] if last_only else lay.starts[0]
        requests.append(HiddenRequest(lay.tokens[: ends[-1] + 1], ends, logprob_from=first if want_lp else None))
    results = engine.hidden_states(requests)
    rows = []
    for lay, req, res in zip(layouts, requests, results):
        per_step = []
        indices = range(len(lay.ends) - 1, len(lay.ends)) if last_only else range(len(lay.ends))
        for j, k in enumerate(indices):
            lp = None
            if want_lp:
                # the step's own tokens, not its last (delimiter) token
                a, b = lay.starts[k] - req.logprob_from, lay.ends[k] - req.logprob_from
                lp = res.token_logprobs[a : max(a + 1, b)]
            per_step.append(_feature_row(head_features, res.hidden[j], lp, lay.ends[k] - lay.starts[k] + 1))
        rows.append(np.stack(per_step))
    return rows


class HeadPRM:
    """A learned head over a backbone engine, as a RewardModel."""

    def __init__(self, engine: Engine, head: Head, check_backbone: bool = True) -> None:
        if engine.facts.n_embd != head.hidden_size:
            raise HeadError(f"the head expects hidden size {head.hidden_size}, but {Path(engine.path).name} "
                            f"has {engine.facts.n_embd}: it was trained on another backbone")
        if check_backbone:
            sha = file_sha256(engine.path)
            if sha != head.backbone_sha256:
                raise HeadError(f"the head was trained on backbone {head.backbone_sha256[:12]}…, not on "
                                f"{Path(engine.path).name} ({sha[:12]}…); pass that model or another --head")
        self.engine = engine
        self.head = head
        self._layout = PROMPT_FORMATS[head.prompt_format]

    def layout(self, question: str, steps: Sequence[str]) -> StepLayout:
        return self._layout(self.engine, question, steps, self.head.meta)

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        x = step_features(self.engine, self.head.features, [self.layout(question, steps)], last_only=False)[0]
        return [float(p) for p in self.head.predict(x)]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        if not paths:
            return []
        layouts = [self.layout(question, p) for p in paths]
        x = np.concatenate(step_features(self.engine, self.head.features, layouts, last_only=True))
        return [float(p) for p in self.head.predict(x)]

    # -------------------------------------------- scoring a search's tokens ---
    def reads_tokens_of(self, engine: Engine, system_prompt: str, delimiter: str) -> bool:
        """Whether token paths written by ``engine`` under this system prompt and
        delimiter are laid out as this head was trained (then the search hands
        over its tokens instead of text, and the drafter's KV cache serves them)."""
        meta = self.head.meta
        return (
            self.head.prompt_format == "drafter-chat"
            and meta.get("system_prompt", SearchConfig().system_prompt) == system_prompt
            and meta.get("delimiter", SearchConfig().delimiter) == delimiter
            and (engine is self.engine or engine.info.vocab_fingerprint == self.engine.info.vocab_fingerprint)
        )

    def score_tokens(self, paths: Sequence[Sequence[int]], step_starts: Sequence[int],
                     texts: Sequence[str] = ()) -> list[float]:
        """The score of the last step of each token path (prompt + earlier steps +
        this step, delimiter included), the step starting at ``step_starts[i]``
        (``texts``, the steps' texts, are for reward models with text checks on top).

        When the backbone drafted the step, its KV cache holds all but the
        step's last token, so a head reading only hidden states costs one
        batched decode of one token per path.
        """
        if not paths:
            return []
        want_lp = _wants_logprobs(self.head.features)
        requests = [HiddenRequest(list(p), [len(p) - 1], logprob_from=s if want_lp else None)
                    for p, s in zip(paths, step_starts)]
        results = self.engine.hidden_states(requests)
        rows = []
        for p, s, res in zip(paths, step_starts, results):
            lp = res.token_logprobs[: max(1, len(p) - 1 - s)] if want_lp else None
            rows.append(_feature_row(self.head.features, res.hidden[0], lp, len(p) - s))
        return [float(v) for v in self.head.predict(np.stack(rows))]


def load_head_prm(engine: Engine, head: str | None) -> HeadPRM:
    """``--prm-kind head``: the named head file, else the shipped head for this backbone."""
    if head is None:
        sha = file_sha256(engine.path)
        found = find_head(sha)
        if found is None:
            raise HeadError(
                f"no head ships for {Path(engine.path).name} (SHA-256 {sha[:12]}…); train one with "
                "`specsearch prm train --backbone FILE --data ... --out HEAD.npz` and pass --head HEAD.npz"
            )
        head = str(found)
    return HeadPRM(engine, Head.load(head))


register_prm_kind(PRMKind(
    "head", lambda engine, head=None: load_head_prm(engine, head),
    "a learned head over the model's hidden states (shipped for the offline pack's models, or --head FILE)",
))
