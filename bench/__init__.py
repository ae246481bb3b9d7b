"""facegan's live benchmarks, run from the checkout as modules (``python -m bench.screen``, ``bench.throughput``,
``bench.levers``, ``bench.contention``). Concluded studies live in docs/ and git history (docs/contributing.md)."""
