"""Benchmarks: analytic FLOPs (`flops`), XLA's compiled cost and memory (`compiled`), wall-clock timing
(`timing`), the PyTorch reference (`reference`), the cases (`cases`), running them (`runner`, `suite`) and
reports (`report`). `tools/benchmark.py` is the command line."""
