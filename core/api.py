"""Python API: load the models a method needs once, then run searches.

    from specsearch.core import Solver, SearchConfig
    solver = Solver(small="S.gguf", large="L.gguf", prm="P.gguf", prm_kind="judge")
    result = solver.solve("What is 2+3?", SearchConfig(method="specsearch"),
                          on_event=print, cancel=None)
    print(result.answer, result.stats.to_dict())

CONTRACT (implementation in progress):
- Solver(small, large, prm, prm_kind="judge"|"step-tag", load=LoadOptions|None)
  each model is a path or a ModelSpec(path, n_gpu_layers=None, n_ctx=None, n_threads=None);
  models load lazily on first use; any may be None if the method does not need it.
- solve(question, config=None, on_event=None, cancel=None) -> SearchResult
  emits core.events in order: SearchStarted, then per step StepStarted,
  ThoughtDrafted*, ThoughtScored*, ThoughtAccepted/ThoughtRejected*,
  ThoughtRegenerated*, BeamsSelected, StatsUpdated; finally SearchFinished
  (also after cancel; result.cancelled is True then).  Runs on the caller's
  thread; safe to call again after a cancel.
- next_step(question, previous_steps, config=None) -> str : one more thought
  (a hint for tutoring), generated with config.method's generator.
- judge_step(question, steps) -> float : the PRM score in [0, 1] of steps[-1].
- close() frees the models.
"""
