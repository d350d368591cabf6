"""Benchmarks, scoring protocols, evaluation runs, the run store and reports.

One room per responsibility, imports one way (an import-linter contract holds it):
``runner`` (plan → execute → record) over ``execute`` (one run, batch by batch) and ``report``,
over ``plan`` (the runs of a benchmark, resume, baseline backends), ``spec`` (what was asked),
``engines`` (where generation runs), ``treatments`` (sanity and shift runs), ``scoring``, the
``store``, ``protocols`` (one file per protocol), ``benchmarks`` (one file per benchmark),
``metrics``, ``quality`` and ``samples`` (the records every other room names).
"""
