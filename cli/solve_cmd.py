"""``specsearch solve``: one question, the search streamed to stdout."""

from __future__ import annotations

import argparse
import json
import sys

from specsearch.core import events as ev
from specsearch.core.prm_info import prm_label, prm_of
from specsearch.core.text import one_line
from specsearch.core.tree import SearchResult
from specsearch.models.locations import auto_memory_file

from .search_args import add_model_args, add_search_args, make_solver, search_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "solve",
        help="solve one question with speculative search, streaming its steps",
        description="Solve a question by beam search over reasoning steps. With --method specsearch "
        "the small model drafts each step, the reward model scores the drafts, and the large model "
        "rewrites only drafts below the threshold β. The default, --method auto, does that while it is "
        "predicted faster than the large model alone and lets the large model write when not (what it "
        "learned is kept for the next solve). Steps are printed as they happen.",
    )
    p.add_argument("question", help="the question ('-' reads standard input)")
    p.add_argument("--json", action="store_true", help="one JSON event per line instead of text")
    p.add_argument("--no-auto-memory", action="store_true",
                   help="method auto: start afresh, neither reading nor saving what earlier runs on these models "
                   "and settings learned about drafting (kept in the data dir's auto_memory.json)")
    add_model_args(p)
    add_search_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    question = sys.stdin.read().strip() if args.question == "-" else args.question
    config = search_config(args)
    solver = make_solver(args, auto_memory=None if args.no_auto_memory else auto_memory_file())
    printer = _json_line if args.json else TextPrinter().handle
    with solver:
        result = solver.solve(question, config, on_event=printer)
    for notice in solver.notices:  # said after the search (auto's memory not saved): nobody else will hear it
        print(f"note: {notice}", file=sys.stderr)
    if result.error:  # a served model failed mid-search; the tree so far was printed
        from .main import EXIT_ERROR

        return EXIT_ERROR
    return 0 if not result.cancelled else 130


def _json_line(event: ev.SearchEvent) -> None:
    sys.stdout.write(json.dumps(event.to_dict(), ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class TextPrinter:
    """Human-readable stream: one line per thought, symbols carry the fate."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.scores: dict[int, float] = {}
        # Why the arithmetic check marked a thought wrong, until its accept/reject line says so.
        self.flags: dict[int, str] = {}

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def handle(self, event: ev.SearchEvent) -> None:
        if isinstance(event, ev.ThoughtScored):
            self.scores[event.node_id] = event.score
            if event.flag:
                self.flags[event.node_id] = event.flag
            return
        if not isinstance(event, (ev.ThoughtAccepted, ev.ThoughtRejected)):
            self._flush_flags()  # thoughts no acceptance test follows (large-model steps, baselines)
        self._print(event)

    def _flag(self, node_id: int) -> str:
        flag = self.flags.pop(node_id, None)
        return f"  ⚠ {flag}" if flag else ""

    def _flush_flags(self) -> None:
        for node_id, flag in self.flags.items():
            self.say(f"  ⚠ #{node_id:<3} score {self.scores.get(node_id, 0):.3f}  {flag}")
        self.flags.clear()

    def _print(self, event: ev.SearchEvent) -> None:
        if isinstance(event, ev.SearchStarted):
            self.say(f"method {event.method}: {one_line(event.question, 200)}")
            prm = prm_of(event.config)
            if prm is not None:
                self.say(f"reward model: {prm_label(prm)}")
        elif isinstance(event, ev.Notice):
            self.say(f"note: {event.message}")
        elif isinstance(event, ev.StepStarted):
            beta = f"  β = {event.beta:.3f}" if event.beta is not None else ""
            self.say(f"\nstep {event.step}{beta}")
        elif isinstance(event, ev.ThoughtDrafted):
            n = event.node
            self.say(f"  · #{n.id:<3} {n.source:<5} drafted   {one_line(n.text, 90)}")
        elif isinstance(event, ev.ThoughtAccepted):
            self.say(f"  ✓ #{event.node_id:<3} accepted  score {event.score:.3f} ≥ β {event.beta:.3f}"
                     + self._flag(event.node_id))
        elif isinstance(event, ev.ThoughtRejected):
            self.say(f"  ✗ #{event.node_id:<3} rejected  score {event.score:.3f} < β {event.beta:.3f}"
                     + self._flag(event.node_id))
        elif isinstance(event, ev.ThoughtRegenerated):
            n = event.node
            self.say(f"  ↻ #{n.id:<3} large rewrites #{event.replaces}: {one_line(n.text, 90)}")
        elif isinstance(event, ev.BeamsSelected):
            kept = ", ".join(f"#{i} ({self.scores.get(i, 0):.2f})" for i in event.selected_ids)
            done = f"; finished {', '.join(f'#{i}' for i in event.finished_ids)}" if event.finished_ids else ""
            self.say(f"  ★ kept {kept}{done}")
        elif isinstance(event, ev.DraftsTried):
            self.say(f"  ⇄ auto: a trial at step {event.step}: drafts judged to measure acceptance, not kept; "
                     "the large model writes the step")
        elif isinstance(event, ev.MethodSwitched):
            self.say(f"  ⇄ auto: {event.from_method} → {event.to_method} from step {event.step}: {event.reason}")
        elif isinstance(event, ev.SearchFinished):
            self.summary(event.result)

    def summary(self, r: SearchResult) -> None:
        s = r.stats
        if r.error:
            self.say(f"\nsearch stopped: {r.error}")
        self.say("\n" + ("search cancelled — best so far:" if r.cancelled else "solution:"))
        self.say(r.solution or "(none)")
        self.say(f"\nanswer: {r.answer if r.answer is not None else '(no final answer found)'}")
        parts = [f"{s.wall_seconds:.1f}s"]
        for model in ("small", "large"):
            tps = s.tokens_per_second(model)
            if s.tokens.get(model):
                parts.append(f"{model} {s.tokens[model]} tok" + (f" @ {tps:.1f} tok/s" if tps else ""))
        if s.thought_acceptance_rate is not None:
            parts.append(f"thoughts accepted {s.thoughts_accepted}/{s.thoughts_accepted + s.thoughts_rejected} "
                         f"({s.thought_acceptance_rate:.0%})")
        if s.trial_acceptance_rate is not None:
            parts.append(f"trial drafts accepted {s.trial_drafts_accepted}/"
                         f"{s.trial_drafts_accepted + s.trial_drafts_rejected} ({s.trial_acceptance_rate:.0%}, not kept)")
        if s.token_acceptance_rate is not None:
            parts.append(f"draft tokens accepted {s.token_acceptance_rate:.0%}")
        if s.predicted_speedup is not None and r.method != "ar":
            ceiling = f" (ceiling ×{s.ceiling_speedup:.2f})" if s.ceiling_speedup else ""
            parts.append(f"predicted speed-up vs ar ×{s.predicted_speedup:.2f}{ceiling}")
        self.say("stats: " + ", ".join(parts))
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in s.phase_seconds.items())
        self.say(f"time by phase: {phases}")
