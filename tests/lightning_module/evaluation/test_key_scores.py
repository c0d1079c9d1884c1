"""Key evaluation: against annotated keys, against the DSP teacher, as report lines."""

import numpy as np
import pandas as pd

from datamodules.analysis.key import parse_key
from lightning_module.evaluation.key_scores import key_lines, key_report, key_truth


def test_key_report_scores_the_student_and_the_teacher_against_annotations() -> None:
    rows = pd.DataFrame({"key": ["C", "A", None, "G"], "mode": ["major", "minor", None, "major"]})
    truth = key_truth(rows)
    assert truth.tolist() == [parse_key("C"), parse_key("Am"), -1, parse_key("G")]
    predicted = np.array([parse_key("C"), parse_key("C"), parse_key("D"), parse_key("D")])
    teacher = np.array([parse_key("C"), parse_key("Am"), parse_key("D"), parse_key("G")])
    report = key_report(truth, predicted, teacher, np.ones(4, bool))
    assert report["cnn"]["n"] == 3 and report["cnn"]["correct"] == 1 / 3
    # C for A minor is the relative key (0.3), D for G major a fifth (0.5)
    assert abs(report["cnn"]["weighted"] - (1.0 + 0.3 + 0.5) / 3) < 1e-9
    assert report["teacher_vs_truth"]["correct"] == 1.0
    assert report["cnn_vs_teacher"]["n"] == 4
    lines = key_lines(report)
    assert len(lines) == 3 and "CNN vs annotated keys (n=3)" in lines[0]
    assert key_report(np.full(4, -1), predicted, None, np.ones(4, bool)) is None
