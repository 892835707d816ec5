"""Benchmarks: analytic FLOPs (`flops`), XLA's compiled cost and memory (`compiled`), wall-clock timing
(`timing`), the PyTorch reference (`reference`), the cases (`cases`), running them (`runner`, `suite`) and
reports (`report`). `timesformer benchmark` is the command line."""
