"""An AotReport as the terminal table `timesformer compile` prints."""
from __future__ import annotations

from timesformer_jax.aot.compile import AotReport

GIB = 1 << 30


def _gib(n: float) -> str:
    return f"{n / GIB:.2f}"


def _collectives(found: dict) -> str:
    return ", ".join(f"{kind} x{v['count']} ({v['bytes'] / (1 << 20):.0f} MiB)" for kind, v in sorted(found.items())) or "none"


def format_report(report: AotReport) -> str:
    header = (f"{report.target}: {report.num_devices} x {report.device_kind}, mesh "
              + " ".join(f"{axis}={size}" for axis, size in report.mesh.items())
              + f", {report.attention_type} ({report.attention_impl} attention), remat {f'on ({report.remat_policy})' if report.remat else 'off'}, blocks "
              f"{'scanned' if report.scan_blocks else 'unrolled'}, global batch "
              f"{report.global_batch} (train) / {report.eval_batch} (eval)")
    columns = ("step", "args GiB", "outputs", "temps", "aliased", "total", "capacity", "fits", "TFLOP/step",
               "FLOPs by", "roofline ms", "clips/s <=", "compile s")
    rows = [columns]
    for name, step in report.steps.items():
        m = step.memory_per_device
        rows.append((name, _gib(m["arguments"]), _gib(m["outputs"]), _gib(m["temporaries"]), _gib(m["aliased"]),
                     _gib(m["total"]), _gib(m["capacity"]), "yes" if step.fits else "NO",
                     f"{step.flops_per_step / 1e12:.2f}", step.flops_source,
                     f"{1e3 * step.roofline_seconds:.1f} ({step.roofline_bound})", f"{step.clips_per_second:.0f}",
                     f"{step.compile_seconds:.0f}"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(columns))]
    lines = [header, "memory per device; FLOPs for the whole step (all devices); roofline: max(FLOPs at peak, HBM "
                     "traffic at peak bandwidth) per step"]
    lines += ["  ".join(str(cell).rjust(w) for cell, w in zip(row, widths)) for row in rows]
    for name, step in report.steps.items():
        lines.append(f"{name} collectives: {_collectives(step.collectives)}")
        if step.xla_rematerialized_ops:
            lines.append(f"{name}: XLA rematerialized {step.xla_rematerialized_ops} instructions to fit the device: "
                         "it fits only by recomputing more than the FLOPs above count")
        if step.error:
            lines.append(f"{name}: does not fit: {step.error}")
    return "\n".join(lines)
