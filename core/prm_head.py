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
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .atomic import atomic_write_bytes
from .config import SearchConfig
from .engine import Engine, HiddenRequest
from .errors import SpecSearchError
from .prm import JudgePRM, PRMKind, register_prm_kind

HEAD_FORMAT = "specsearch-prm-head"
HEAD_VERSION = 1
LOGPROB_FEATURES = ("logprob_mean", "logprob_min", "logprob_p10", "low_fraction",
                    "digit_logprob_min", "digit_logprob_mean", "digit_low_fraction")
FEATURES = ("hidden", *LOGPROB_FEATURES, "log_tokens", "log_digit_tokens", "arith_flag")
"""hidden: the hidden state at the step's last token.  The log-prob features are
statistics of the backbone's log-probabilities of the step's own tokens
(delimiter excluded): mean, minimum, 10th percentile, the fraction below
log(0.1), and the minimum, mean and fraction below log(0.1) over tokens that
contain a digit (a number the model did not expect is a common sign of a
slip).  log_tokens, log_digit_tokens: log(1 + count) of the step's tokens and
of those with a digit; arith_flag: 1 when the exact arithmetic check finds a wrong equation."""
SEARCH_SAFE_FEATURES = ("logprob_mean", "logprob_min", "logprob_p10", "low_fraction", "digit_logprob_min",
                        "digit_logprob_mean", "digit_low_fraction", "arith_flag")
"""The shipped head's features: no step length or counts, which score well on
ProcessBench but rank steps that compute nothing first in a search."""
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


# ----------------------------------------------------------------- PRM ---
_DIGIT = re.compile(r"\d")
_LOW = np.log(0.1)  # a token the model gave less than 10 %


@dataclass
class StepEvidence:
    """What a head's features are computed from, for one step."""

    hidden: np.ndarray | None  # hidden state at the step's last token
    logprobs: np.ndarray | None  # log-probs of the step's tokens, its last (delimiter) token excluded
    tokens: Sequence[int]  # the same tokens
    text: str  # the step's text (for the arithmetic flag)


def _feature_row(names: Sequence[str], ev: StepEvidence, engine: Engine) -> np.ndarray:
    """One step's feature vector, in the head's feature order."""
    lp = ev.logprobs if ev.logprobs is not None and len(ev.logprobs) else np.zeros(1)
    digits, n_digit_tokens = None, 0
    if any("digit" in n for n in names):
        mask = np.array([bool(_DIGIT.search(engine.vocab.piece(t).decode("utf-8", "replace"))) for t in ev.tokens])
        n_digit_tokens = int(mask.sum())
        digits = lp[mask] if ev.logprobs is not None and len(lp) == len(mask) else np.zeros(0)
    parts: list[np.ndarray] = []
    for name in names:
        if name == "hidden":
            parts.append(ev.hidden.astype(np.float64))
            continue
        if name == "logprob_mean":
            value = lp.mean()
        elif name == "logprob_min":
            value = lp.min()
        elif name == "logprob_p10":
            value = np.percentile(lp, 10)
        elif name == "low_fraction":
            value = (lp < _LOW).mean()
        elif name == "log_tokens":
            value = np.log1p(len(ev.tokens) + 1)
        # A step without numbers gets its all-token values, not a free pass: in a
        # search a head must not prefer steps that compute nothing.
        elif name == "digit_logprob_min":
            value = digits.min() if digits.size else lp.min()
        elif name == "digit_logprob_mean":
            value = digits.mean() if digits.size else lp.mean()
        elif name == "digit_low_fraction":
            value = (digits < _LOW).mean() if digits.size else (lp < _LOW).mean()
        elif name == "log_digit_tokens":
            value = np.log1p(n_digit_tokens)
        elif name == "arith_flag":
            from .arithmetic import explain_step

            value = 1.0 if explain_step(ev.text) else 0.0
        else:
            raise HeadError(f"unknown feature {name!r}")
        parts.append(np.array([float(value)]))
    return np.concatenate(parts)


def _wants_logprobs(names: Sequence[str]) -> bool:
    return any(f in LOGPROB_FEATURES for f in names)


def step_features(engine: Engine, head_features: Sequence[str], layouts: Sequence[StepLayout],
                  texts: Sequence[Sequence[str]], last_only: bool) -> list[np.ndarray]:
    """Feature rows [steps, n_features] per layout (only its last step when
    ``last_only``); ``texts`` are each layout's step texts."""
    want_lp = _wants_logprobs(head_features)
    requests = []
    for lay in layouts:
        ends = lay.ends[-1:] if last_only else lay.ends
        first = lay.starts[-1] if last_only else lay.starts[0]
        requests.append(HiddenRequest(lay.tokens[: ends[-1] + 1], ends, logprob_from=first if want_lp else None))
    results = engine.hidden_states(requests)
    rows = []
    for lay, steps, req, res in zip(layouts, texts, requests, results):
        per_step = []
        indices = range(len(lay.ends) - 1, len(lay.ends)) if last_only else range(len(lay.ends))
        for j, k in enumerate(indices):
            body = lay.tokens[lay.starts[k] : lay.ends[k]] or lay.tokens[lay.ends[k] : lay.ends[k] + 1]
            lp = None
            if want_lp:
                a = lay.starts[k] - req.logprob_from
                lp = res.token_logprobs[a : a + len(body)]
            ev = StepEvidence(res.hidden[j], lp, body, steps[k])
            per_step.append(_feature_row(head_features, ev, engine))
        rows.append(np.stack(per_step))
    return rows


def check_head_fits(engine: Engine, head: Head, check_backbone: bool = True) -> None:
    """A one-line HeadError unless ``head`` was made for ``engine``'s model: its hidden size,
    and (``check_backbone``) the file's SHA-256."""
    if engine.facts.n_embd != head.hidden_size:
        raise HeadError(f"the head expects hidden size {head.hidden_size}, but {Path(engine.path).name} "
                        f"has {engine.facts.n_embd}: it was trained on another backbone")
    if check_backbone:
        sha = file_sha256(engine.path)
        if sha != head.backbone_sha256:
            raise HeadError(f"the head was trained on backbone {head.backbone_sha256[:12]}…, not on "
                            f"{Path(engine.path).name} ({sha[:12]}…); pass that model or another --head")


class HeadPRM:
    """A learned head over a backbone engine, as a RewardModel."""

    def __init__(self, engine: Engine, head: Head, check_backbone: bool = True) -> None:
        check_head_fits(engine, head, check_backbone)
        self.engine = engine
        self.head = head
        self._layout = PROMPT_FORMATS[head.prompt_format]

    def layout(self, question: str, steps: Sequence[str]) -> StepLayout:
        return self._layout(self.engine, question, steps, self.head.meta)

    def fits(self, question: str, steps: Sequence[str]) -> bool:
        return len(self.layout(question, steps).tokens) < self.engine.n_ctx

    def score(self, question: str, steps: Sequence[str]) -> list[float]:
        if not steps:
            return []
        lay = self.layout(question, steps)
        x = step_features(self.engine, self.head.features, [lay], [steps], last_only=False)[0]
        return [float(p) for p in self.head.predict(x)]

    def score_last(self, question: str, paths: Sequence[Sequence[str]]) -> list[float]:
        if not paths:
            return []
        layouts = [self.layout(question, p) for p in paths]
        x = np.concatenate(step_features(self.engine, self.head.features, layouts, paths, last_only=True))
        return [float(p) for p in self.head.predict(x)]

    @property
    def backbone(self) -> Engine:
        return self.engine

    @property
    def wants_logprobs(self) -> bool:
        """Whether the features use the backbone's log-probs of the step's tokens
        (a drafter that is the backbone can hand over those it computed anyway)."""
        return _wants_logprobs(self.head.features)

    @property
    def logprobs_only(self) -> bool:
        """Whether the features come from log-probs (and the step's text) alone, no hidden
        state: then any model with the backbone's vocabulary can supply them."""
        return self.wants_logprobs and "hidden" not in self.head.features

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
                     texts: Sequence[str] = (), logprobs: Sequence[Sequence[float] | None] | None = None) -> list[float]:
        """The score of the last step of each token path (prompt + earlier steps +
        this step, delimiter included), the step starting at ``step_starts[i]``;
        ``texts`` are the steps' texts.  ``logprobs[i]``, when given, are the
        backbone's log-probs of the step's tokens as computed while drafting it.

        When the backbone drafted the step, its KV cache holds all but the
        step's last token, so reading the hidden state costs one batched decode
        of one token per path, and the log-probs cost nothing.
        """
        if not paths:
            return []
        texts = list(texts) or [""] * len(paths)
        given = list(logprobs) if logprobs is not None else [None] * len(paths)
        want_lp, want_hidden = self.wants_logprobs, "hidden" in self.head.features
        recompute = [want_lp and g is None for g in given]
        results = [None] * len(paths)
        todo = [i for i in range(len(paths)) if want_hidden or recompute[i]]
        if todo:
            reqs = [HiddenRequest(list(paths[i]), [len(paths[i]) - 1],
                                  logprob_from=step_starts[i] if recompute[i] else None) for i in todo]
            for i, res in zip(todo, self.engine.hidden_states(reqs)):
                results[i] = res
        rows = []
        for i, (p, s) in enumerate(zip(paths, step_starts)):
            body = list(p[s:-1]) or list(p[-1:])
            lp = None
            if want_lp:
                source = results[i].token_logprobs if recompute[i] else np.asarray(given[i], dtype=np.float64)
                lp = np.asarray(source[: len(body)], dtype=np.float64)
            hidden = results[i].hidden[0] if want_hidden else None
            rows.append(_feature_row(self.head.features, StepEvidence(hidden, lp, body, texts[i]), self.engine))
        return [float(v) for v in self.head.predict(np.stack(rows))]


def load_head_prm(engine: Engine, head: str | None) -> HeadPRM:
    """``--prm-kind head``: the named head file, else the shipped head for this backbone."""
    if head is None:
        found = shipped_head_for(engine.path)
        if found is None:
            sha = file_sha256(engine.path)
            raise HeadError(
                f"no head ships for {Path(engine.path).name} (SHA-256 {sha[:12]}…); train one with "
                "`specsearch prm train --backbone FILE --data ... --out HEAD.npz` and pass --head HEAD.npz"
            )
        head = str(found)
    return HeadPRM(engine, Head.load(head))


def shipped_head_for(model_path: str | os.PathLike[str]) -> Path | None:
    """The head that ships for this model file, if any.  Heads of another hidden
    size are ruled out from the GGUF header first, so a model no head fits (say
    a 7B) is not read through for its SHA-256."""
    from .gguf_info import read_gguf_info

    n_embd = read_gguf_info(model_path).n_embd
    candidates = []
    for path in shipped_heads():
        try:
            head = Head.load(path)
        except HeadError:
            continue
        if head.hidden_size == n_embd:
            candidates.append((path, head.backbone_sha256))
    if not candidates:
        return None
    sha = file_sha256(model_path)
    return next((path for path, backbone in candidates if backbone == sha), None)


def load_auto_prm(engine: Engine, head: str | None) -> "HeadPRM | JudgePRM":
    """The best measured judge for the model: a head (``head`` or the shipped
    one for this backbone) when there is one, else the model as a yes/no judge."""
    found = head or shipped_head_for(engine.path)
    return HeadPRM(engine, Head.load(found)) if found else JudgePRM(engine)


register_prm_kind(PRMKind(
    "auto", lambda engine, head=None: load_auto_prm(engine, head),
    "the shipped learned head for the PRM model when there is one (the offline pack's 0.5B), else judge",
))
register_prm_kind(PRMKind(
    "head", lambda engine, head=None: load_head_prm(engine, head),
    "a learned head over the model's hidden states (shipped for the offline pack's models, or --head FILE)",
))
