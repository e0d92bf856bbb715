"""Training a result: the orchestration layer above the harness and the benchmarks.

The harness (timed run, logging, seeds, distributed set-up) knows only the `Workload`
interface; the benchmarks build workloads on top of it. This layer joins them: it resolves a
benchmark in the registry, builds its workload, runs the seeds, scores and stores the result
(`runs`), prints it (`result_tables`), and trains the mini models that inference serves
(`models`, `squad_finetune`), so that `mlpace.inference` never trains.
"""
