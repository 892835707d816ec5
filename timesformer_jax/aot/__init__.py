"""Ahead-of-time compilation for TPU slices and NVIDIA GPUs that are not attached: per-device memory, fit, FLOPs,
collectives and a roofline step time (`timesformer compile`)."""
from timesformer_jax.aot.chips import CHIPS, ChipSpec
from timesformer_jax.aot.compile import AotReport, StepReport, compile_config, compile_step
from timesformer_jax.aot.report import format_report
from timesformer_jax.aot.targets import TPU_TYPES, Target, parse_target, target_devices

__all__ = ["CHIPS", "ChipSpec", "AotReport", "StepReport", "compile_config", "compile_step",
           "format_report", "TPU_TYPES", "Target", "parse_target", "target_devices"]
