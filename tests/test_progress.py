"""The training progress bar: its line, clips/s and ETA, on a terminal and in a log."""
import io

from timesformer_jax.train.progress import ProgressBar, format_duration


def test_progress_line_and_eta():
    stream = io.StringIO()
    bar = ProgressBar(total_steps=100, clips_per_step=8, stream=stream)
    bar._last_time -= 2.0  # 10 steps of 8 clips in 2 s: 40 clips/s, 90 steps left: 18 s
    bar.update(10, loss=2.5, lr=0.01)
    line = stream.getvalue()
    assert line.startswith("step 10/100 [") and "loss 2.5 lr 0.01" in line and line.endswith("\n")
    assert "40.0 clips/s" in line.replace("39.9", "40.0") and "ETA 0:18" in line.replace("0:17", "0:18")
    assert format_duration(3725) == "1:02:05"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_redraws_in_place_and_messages_do_not_clobber():
    stream = Terminal()
    bar = ProgressBar(total_steps=100, clips_per_step=8, stream=stream)
    bar._last_time -= 2.0
    bar.update(10, loss=2.5)
    bar.message("evaluating at step 10 ...")
    bar.close()
    text = stream.getvalue()
    assert "\r" in text and "step 10/100" in text and "40.0 clips/s" in text.replace("39.9", "40.0")
    assert "evaluating at step 10 ...\n" in text


def test_log_lines_before_any_measurement_and_when_disabled():
    stream = io.StringIO()
    bar = ProgressBar(total_steps=10, clips_per_step=2, first_step=10, stream=stream)
    bar.update(10, loss=1.0)  # no step since the last update: no rate yet
    assert stream.getvalue() == "step 10/10 [########################] 100% loss 1 ? clips/s ETA ?\n"
    quiet = io.StringIO()
    ProgressBar(total_steps=10, clips_per_step=2, enabled=False, stream=quiet).update(5, loss=1.0)
    assert quiet.getvalue() == ""
