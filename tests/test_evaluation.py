"""Multi-view scoring against hand-worked cases, a brute-force reference and torch; the report files."""
import csv
import json

import numpy as np
import pytest
import torch

from timesformer_jax.train.evaluation import (EvalCounts, EvalResult, count_predictions, plot_eval_confusion,
                                             write_eval_reports)


def test_views_are_combined_per_video_before_scoring():
    # One video, class 0, three views: two views narrowly prefer class 1, one strongly prefers class 0.
    logits = np.array([[0.0, 0.1, -5], [0.0, 0.1, -5], [3.0, 0.0, -5]])
    counts = count_predictions(logits, np.zeros(3, int), np.zeros(3, int), num_classes=3)
    metrics = EvalResult(counts).metrics()
    assert metrics["clip_top1"] == pytest.approx(1 / 3)
    assert metrics["video_top1"] == 1.0  # summed logits: class 0 wins 3.0 to 0.2
    assert counts.confusion.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    # Averaging probabilities instead: class 0 still wins (0.95 + 2 x 0.47 against 2 x 0.52 + 0.05).
    assert EvalResult(count_predictions(logits, np.zeros(3, int), np.zeros(3, int), 3, "softmax")).metrics()[
        "video_top1"] == 1.0


def test_aggregation_modes_can_disagree():
    # One view sure of class 0, two views leaning to class 1. Summed logits: 20 against 4, class 0.
    # Averaged probabilities: 1.0 + 2 x 0.119 = 1.238 against 2 x 0.881 = 1.762, class 1.
    logits = np.array([[20.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    labels, index = np.zeros(3, int), np.zeros(3, int)
    by_logits = count_predictions(logits, labels, index, 2, "logits")
    by_softmax = count_predictions(logits, labels, index, 2, "softmax")
    assert by_logits.confusion.tolist() == [[1, 0], [0, 0]]
    assert by_softmax.confusion.tolist() == [[0, 1], [0, 0]]
    with pytest.raises(ValueError, match="aggregation must be one of"):
        count_predictions(logits, labels, index, 2, "mean")


def test_counts_match_brute_force_and_torch():
    rng = np.random.default_rng(0)
    num_videos, views, classes = 37, 3, 12
    video_labels = rng.integers(0, classes, num_videos)
    logits = rng.normal(size=(num_videos * views, classes)) + 2 * np.eye(classes)[np.repeat(video_labels, views)]
    labels = np.repeat(video_labels, views)
    example_index = np.repeat(rng.permutation(1000)[:num_videos], views)  # any ids, grouped by equality
    order = rng.permutation(len(labels))  # views arrive in any order
    result = EvalResult(count_predictions(logits[order], labels[order], example_index[order], classes))
    metrics = result.metrics()

    t_logits, t_labels = torch.tensor(logits), torch.tensor(labels)
    assert metrics["loss"] == pytest.approx(torch.nn.functional.cross_entropy(t_logits, t_labels).item(), rel=1e-9)
    top5 = torch.topk(t_logits, 5).indices
    assert metrics["clip_top5"] == pytest.approx((top5 == t_labels[:, None]).any(1).double().mean().item())
    assert metrics["clip_top1"] == pytest.approx((t_logits.argmax(1) == t_labels).double().mean().item())
    video_scores = logits.reshape(num_videos, views, classes).sum(1)
    predicted = video_scores.argmax(1)
    assert metrics["video_top1"] == pytest.approx(np.mean(predicted == video_labels))
    top5_videos = np.argsort(-video_scores, 1)[:, :5]
    assert metrics["video_top5"] == pytest.approx(np.mean([l in t for l, t in zip(video_labels, top5_videos)]))
    for c in range(classes):
        of_class = video_labels == c
        expected = np.mean(predicted[of_class] == c) if of_class.any() else np.nan
        np.testing.assert_equal(result.per_class_accuracy[c], expected)
        assert result.counts.confusion[c].tolist() == [int(np.sum(predicted[of_class] == j)) for j in range(classes)]


def test_counts_add_over_hosts():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(40, 5)), rng.integers(0, 5, 40)
    index = np.repeat(np.arange(20), 2)
    whole = count_predictions(logits, labels, index, 5)
    halves = [count_predictions(logits[s], labels[s], index[s], 5) for s in (slice(0, 20), slice(20, 40))]
    summed = EvalCounts.from_vector(halves[0].to_vector() + halves[1].to_vector(), 5)
    assert EvalResult(summed).metrics() == pytest.approx(EvalResult(whole).metrics())
    np.testing.assert_array_equal(summed.confusion, whole.confusion)


def test_eval_reports(tmp_path):
    counts = count_predictions(np.eye(3)[[0, 1, 1, 2]] * 5, np.array([0, 1, 2, 2]), np.arange(4), 3)
    write_eval_reports(EvalResult(counts), ["a", "b", "c"], tmp_path, step=7)
    assert not (tmp_path / "confusion_matrix.png").exists()  # figures are drawn apart, outside the training steps
    plot_eval_confusion(EvalResult(counts), ["a", "b", "c"], tmp_path, step=7)
    rows = list(csv.reader((tmp_path / "confusion_matrix.csv").open()))
    assert rows == [["true \\ predicted", "a", "b", "c"], ["a", "1", "0", "0"], ["b", "0", "1", "0"],
                    ["c", "0", "1", "1"]]
    per_class = list(csv.DictReader((tmp_path / "per_class_accuracy.csv").open()))
    assert [(r["class"], r["videos"], float(r["top1"])) for r in per_class] == [("a", "1", 1.0), ("b", "1", 1.0),
                                                                             ("c", "2", 0.5)]
    assert json.loads((tmp_path / "metrics.json").read_text())["video_top1"] == 0.75
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"




def test_curves_of_a_run_with_nothing_logged_draw_without_warnings(tmp_path):
    import warnings

    from timesformer_jax.figures import plot_curves

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plot_curves([], tmp_path / "curves.png", "stopped at its first step")
        plot_curves([{"kind": "train", "step": 1, "loss": 2.0, "accuracy": 0.5}], tmp_path / "one.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
