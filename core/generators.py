"""Thought generators: how one search step makes its candidate thoughts.

core.methods registers each under its method name with the models it needs:

ar         the large model writes every child (batched)            baseline
sps        the large model writes every child, with token-level
           speculative decoding from the small model               baseline
small      the small model writes every child                      lower bound
specsearch the small model drafts every child; the PRM scores the
           drafts; those below beta are rejected and rewritten by
           the large model (with token-level speculative decoding
           where its adaptive k says it pays, else alone, as in ar)

A large model served over HTTP (core.remote_model) writes alone wherever the
speculative decoder would: token-level speculation is then its server's.

A child index numbers the thoughts of one step (beam-major, ``children`` per
beam); it picks the sampling seed, so the same child draws the same way in
every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Protocol

from .engine import Engine, GenerateOutput
from .generation import GenerateStats, Generation, TokenGenerator
from .prm_window import fit_path
from .events import ThoughtAccepted, ThoughtDrafted, ThoughtRegenerated, ThoughtRejected, ThoughtScored
from .sampling import SamplingParams
from .search_state import Beam, Candidate, SearchState
from .speculative import SpeculativeDecoder
from .text import leads_in

if TYPE_CHECKING:  # types only: core.config imports this module (through core.methods), and these import it
    from .prm import RewardModel
    from .threshold import Threshold


@dataclass
class Models:
    """The loaded models of one search; core.methods.make_generator checks a method has its roles."""

    small: Engine | None = None
    large: Engine | None = None
    prm: RewardModel | None = None
    speculative_decoder: SpeculativeDecoder | None = None  # large verifies, small drafts: set when both are local
    between_searches: dict = field(default_factory=dict)
    """What a generator learns in one search and keeps for the next on the same models (the Solver's)."""

    def roles(self) -> tuple[str, ...]:
        """The roles (small, large, prm) that have a model."""
        return tuple(role for role in ("small", "large", "prm") if getattr(self, role) is not None)


class ThoughtGenerator(Protocol):
    name: str

    def expand(self, state: SearchState, beams: list[Beam], depth: int) -> list[Candidate]:
        """Candidate thoughts for ``beams`` (children per beam, beam-major), scored."""
        ...

    def room(self, beams: list[Beam], children: int) -> int:
        """Most tokens each of ``children`` thoughts per beam can have with all of them
        in the writing models' KV caches at once (<= 0: none fit)."""
        ...


def _room(writer: TokenGenerator, beams: list[Beam], children: int) -> int:
    """``writer``'s room for ``children`` thoughts per beam (see ThoughtGenerator.room)."""
    if isinstance(writer, SpeculativeDecoder):
        # The target verifies up to k_max drafted tokens past what it keeps, and the draft holds them.
        extra = writer.policy.k_max + 1
        return min(_room(writer.target, beams, children), _room(writer.draft, beams, children)) - extra
    return writer.generation_room([b.tokens for b in beams], children)


def _large_writer(models: Models) -> TokenGenerator:
    """What can write the large model's thoughts: the speculative decoder (the large model
    with token-level drafting), or the large model alone when there is none (it is served)."""
    return models.speculative_decoder or models.large


def large_writer_for(models: Models, state: SearchState, batch: int) -> TokenGenerator:
    """What writes ``batch`` large-model thoughts inside specsearch and auto: the speculative
    decoder where its adaptive k says token-level drafting pays (or a fixed k was asked for),
    else the large model alone — method ar's own writer, so the same step gives ar's tokens
    exactly (through the decoder, greedy k = 0 rounds read the prompt in other batches, which
    can flip a near-tie)."""
    decoder = models.speculative_decoder
    if decoder is None or not decoder.policy.adaptive:
        return _large_writer(models)
    return decoder if decoder.policy.drafting_pays(search_sampling(state).greedy, batch) else models.large


def search_sampling(state: SearchState) -> SamplingParams:
    """The sampling settings of the search's config."""
    c = state.config
    return SamplingParams(c.temperature, c.top_k, c.top_p, c.min_p)


def _run(state: SearchState, writer: TokenGenerator, jobs: list[tuple[Beam, int]], depth: int,
         logprobs: bool = False) -> GenerateOutput:
    """Generate one thought per (beam, child index) job, all in one batch (``logprobs``:
    keep each token's log-prob, for a reward model that reads the drafter's).  A thought
    that only leads in to its next paragraph ("… these steps:", a lone heading) is continued
    past the delimiter, up to ``join_lead_ins`` times and within the step's token budget:
    a heading is not a reasoning step, and would spend the search's depth on nothing."""
    prompts = [b.tokens for b, _ in jobs]
    seeds = [state.seed(depth, child_index) for _, child_index in jobs]
    out = _generate(state, writer, prompts, seeds, state.step_tokens, logprobs)
    for round_ in range(1, state.config.join_lead_ins + 1):
        gens = out.generations
        todo = [i for i, g in enumerate(gens) if g.finish_reason == "stop" and leads_in(g.text)
                and state.step_tokens - len(g.tokens) >= _MIN_CONTINUATION]
        if not todo or state.cancelled:
            break
        more = _generate(state, writer, [prompts[i] + gens[i].tokens for i in todo],
                         [(seeds[i] + round_ * _SEED_STRIDE) & 0x7FFFFFFF for i in todo],
                         min(state.step_tokens - len(gens[i].tokens) for i in todo), logprobs)
        for i, tail in zip(todo, more.generations):
            head = gens[i]
            gens[i] = Generation(head.text + state.config.delimiter + tail.text, head.tokens + tail.tokens,
                                 head.logprobs + tail.logprobs, tail.finish_reason, head.prompt_index)
        # One call per batch of thoughts, as the cost model counts them (its mean thought length
        # is tokens / batch); the continuation's smaller batch is folded in.
        out.stats = _summed(out.stats, more.stats)
    return out


_MIN_CONTINUATION = 16
"""Fewest tokens of budget left for which a lead-in is continued."""
_SEED_STRIDE = 0x9E3779B1
"""Offsets a continuation's seed from its thought's, so it does not redraw the same numbers."""


def _generate(state: SearchState, writer: TokenGenerator, prompts: list[list[int]], seeds: list[int],
              max_tokens: int, logprobs: bool) -> GenerateOutput:
    return writer.generate(prompts, 1, max_tokens=max_tokens, sampling=search_sampling(state), seeds=seeds,
                           stop=[state.config.delimiter], logprobs=logprobs, should_stop=lambda: state.cancelled)


def _summed(a: GenerateStats, b: GenerateStats) -> GenerateStats:
    """Two calls' statistics as one call's."""
    return GenerateStats(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(GenerateStats)})


def _candidates(state: SearchState, jobs, out: GenerateOutput, depth: int, source: str, fate: str,
                replaces: list[int | None] | None = None) -> list[Candidate]:
    cands = []
    per = out.stats.wall_seconds / max(1, len(jobs))
    for i, ((beam, _), gen) in enumerate(zip(jobs, out.generations)):
        node = state.new_node(beam, depth, gen.text.strip(), len(gen.tokens), source, fate, per,
                              replaces[i] if replaces else None)
        cands.append(Candidate(node, beam, gen.tokens, gen.finish_reason, gen.logprobs or None))
    return cands


def _score(state: SearchState, prm: RewardModel, cands: list[Candidate], writer: Engine | None) -> None:
    """Score new thoughts; ``writer`` is the engine whose tokens they are."""
    if not cands or state.cancelled:
        return  # a cancelled step's thoughts stay unscored
    with state.phase("score"):
        if _reads_search_tokens(prm, writer, state, cands):
            # A learned head on the drafter: the search's own tokens, served from its
            # KV cache, with the log-probs the drafter computed when it is the backbone.
            own = _scores_from_writer(state, prm, writer)
            scores = prm.score_tokens([c.beam.tokens + c.tokens for c in cands],
                                      [len(c.beam.tokens) for c in cands], [c.node.text for c in cands],
                                      [c.logprobs for c in cands] if own else None)
        else:
            # A path longer than the PRM's context is read through a window (core.prm_window).
            windows = [fit_path(prm, state.question, c.beam.steps + [c.node.text]) for c in cands]
            for c, w in zip(cands, windows):
                c.node.prm_trimmed = w.trimmed
            scores = prm.score_last(state.question, [w.steps for w in windows])
    # A reward model with a check on top (core.arithmetic) says why it marked a step wrong.
    explain = getattr(prm, "explain", None)
    for c, s in zip(cands, scores):
        c.node.score = s
        c.node.flag = explain(c.node.text) if explain is not None else None
        state.emit(ThoughtScored(c.node.id, s, c.node.flag))


def _reads_search_tokens(prm: RewardModel, writer: Engine | None, state: SearchState,
                        cands: list[Candidate]) -> bool:
    """Whether ``prm`` scores the search's own token paths (a learned head on a model
    with the writer's vocabulary), which must then fit its backbone's context."""
    reads_tokens = getattr(prm, "reads_tokens_of", None)
    if writer is None or reads_tokens is None:
        return False
    if not reads_tokens(writer, state.config.system_prompt, state.config.delimiter):
        return False
    longest = max(len(c.beam.tokens) + len(c.tokens) for c in cands)
    return longest < prm.backbone.n_ctx


def _scores_from_writer(state: SearchState, prm: RewardModel | None, writer: Engine | None) -> bool:
    """Whether the reward model scores ``writer``'s thoughts from the log-probs ``writer``
    computed while writing them (no second pass): when it is a log-prob head on ``writer``,
    or a head on log-probs alone and the search asks for the large model's own (large_scores)."""
    if writer is None or not getattr(prm, "wants_logprobs", False):
        return False
    if getattr(prm, "backbone", None) is writer:
        return True
    return state.config.large_scores == "own" and bool(getattr(prm, "logprobs_only", False))


def _all_jobs(state: SearchState, beams: list[Beam]) -> list[tuple[Beam, int]]:
    n = state.config.children
    return [(b, i * n + j) for i, b in enumerate(beams) for j in range(n)]


class _WholeStep:
    """One model (or decoder) writes every child; the PRM scores them."""

    name = ""
    source = "large"

    def __init__(self, models: Models) -> None:
        self.models = models

    def runner(self) -> TokenGenerator:
        raise NotImplementedError

    def room(self, beams: list[Beam], children: int) -> int:
        return _room(self.runner(), beams, children)

    def expand(self, state: SearchState, beams: list[Beam], depth: int) -> list[Candidate]:
        jobs = _all_jobs(state, beams)
        state.step.generator = self.name
        with state.phase("generate"):
            out = _run(state, self.runner(), jobs, depth, logprobs=_scores_from_writer(state, self.models.prm, self.writer()))
        state.count_generation(self.source, out)
        cands = _candidates(state, jobs, out, depth, self.source, "generated")
        for c in cands:
            state.emit(ThoughtDrafted(c.node))
        _score(state, self.models.prm, cands, self.writer())
        return cands

    def writer(self) -> Engine | None:
        return self.models.small if self.source == "small" else self.models.large


class AutoRegressive(_WholeStep):
    name, source = "ar", "large"

    def runner(self) -> TokenGenerator:
        return self.models.large


class SpeculativeSampling(_WholeStep):
    name, source = "sps", "large"

    def runner(self) -> TokenGenerator:
        return _large_writer(self.models)


class SmallOnly(_WholeStep):
    name, source = "small", "small"

    def runner(self) -> TokenGenerator:
        return self.models.small


class SpecSearch:
    """Draft with the small model, keep drafts scoring >= beta, regenerate the rest."""

    name = "specsearch"

    def __init__(self, models: Models, threshold: Threshold) -> None:
        self.models = models
        self.threshold = threshold

    def room(self, beams: list[Beam], children: int) -> int:
        # Every child may be drafted, and every one rejected and rewritten.
        return min(_room(self.models.small, beams, children), _room(_large_writer(self.models), beams, children))

    def _write_large(self, state: SearchState, jobs: list[tuple[Beam, int]], depth: int) -> GenerateOutput:
        """The large model's thoughts for ``jobs`` (the first step's, or rejected drafts' replacements)."""
        with state.phase("regenerate"):
            out = _run(state, large_writer_for(self.models, state, len(jobs)), jobs, depth,
                       logprobs=_scores_from_writer(state, self.models.prm, self.models.large))
        state.count_generation("large", out)
        return out

    def expand(self, state: SearchState, beams: list[Beam], depth: int) -> list[Candidate]:
        jobs = _all_jobs(state, beams)
        state.step.generator = self.name
        if self.threshold.beta is None:  # first step: the large model sets beta
            cands = _candidates(state, jobs, self._write_large(state, jobs, depth), depth, "large", "generated")
            for c in cands:
                state.emit(ThoughtDrafted(c.node))
            _score(state, self.models.prm, cands, self.models.large)
            self.threshold.observe_large([c.node.score for c in cands])
            return cands

        beta = self.threshold.bar
        drafts = self._draft_and_judge(state, jobs, depth, beta)
        if state.cancelled:
            return drafts
        rejected_ids = [c.node.id for c in drafts if c.node.fate == "rejected"]
        rejected_jobs = [job for c, job in zip(drafts, jobs) if c.node.fate == "rejected"]

        regenerated: list[Candidate] = []
        if rejected_jobs and not state.cancelled:
            out = self._write_large(state, rejected_jobs, depth)
            regenerated = _candidates(state, rejected_jobs, out, depth, "large", "regenerated", rejected_ids)
            for c, old in zip(regenerated, rejected_ids):
                c.node.beta = beta
                state.stats.thoughts_regenerated += 1
                state.step.regenerated.append(c.node.id)
                state.emit(ThoughtRegenerated(c.node, old))
            _score(state, self.models.prm, regenerated, self.models.large)
        self.threshold.observe_large([c.node.score for c in regenerated])
        # Keep child order: each child index holds its accepted draft or its replacement.
        replacement = {old: c for old, c in zip(rejected_ids, regenerated)}
        out_cands = []
        for c in drafts:
            if c.node.fate == "accepted":
                out_cands.append(c)
            elif c.node.id in replacement:
                out_cands.append(replacement[c.node.id])
        return out_cands

    def judge_drafts(self, state: SearchState, beams: list[Beam], depth: int) -> None:
        """Draft and judge a thought for every child of ``beams``, only to measure acceptance (a trial):
        the drafts stay in the tree with the judge's verdict, and the step's thoughts are written
        by the caller, so no draft can enter the beam."""
        if self.threshold.beta is None:
            return
        self._draft_and_judge(state, _all_jobs(state, beams), depth, self.threshold.bar, trial=True)

    def _draft_and_judge(self, state: SearchState, jobs: list[tuple[Beam, int]], depth: int,
                         beta: float, trial: bool = False) -> list[Candidate]:
        """The small model's drafts for ``jobs``, scored, each accepted (score >= beta) or rejected
        (a trial's verdicts are counted apart: they decide nothing in the tree)."""
        with state.phase("draft"):
            out = _run(state, self.models.small, jobs, depth, logprobs=_scores_from_writer(
                state, self.models.prm, self.models.small))
        state.count_generation("small", out)
        drafts = _candidates(state, jobs, out, depth, "small", "pending")
        if not trial:
            state.stats.thoughts_drafted += len(drafts)
        for c in drafts:
            c.node.trial = trial
            state.emit(ThoughtDrafted(c.node))
            state.step.drafted.append(c.node.id)
        _score(state, self.models.prm, drafts, self.models.small)
        if state.cancelled:
            return drafts
        for c in drafts:
            c.node.beta = beta
            accepted = c.node.score >= beta
            c.node.fate = "accepted" if accepted else "rejected"
            state.stats.count_verdict(accepted, trial)
            (state.step.accepted if accepted else state.step.rejected).append(c.node.id)
            state.emit((ThoughtAccepted if accepted else ThoughtRejected)(c.node.id, c.node.score, beta))
        return drafts
