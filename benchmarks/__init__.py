"""flowcore benchmarks: workloads W1-W7 and the scale run of ``docs BENCHMARKS.md``.

Run ``python -m benchmarks --help``; see ``benchmarks/README.md``.
"""
