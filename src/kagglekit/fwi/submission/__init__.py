"""Submission CSVs in the exact Kaggle format of waveform inversion, one idea per module:

- `format`: the columns, the header and `SubmissionError`;
- `sample`: the sample submission (row order) parsed once;
- `scale`: predictions checked against 1500-4500 m/s before the writer clips them;
- `write`: `write_csv(pred, sample, out_path)`, the fast fixed-width writer;
- `validate`: `validate_submission(csv, sample)`, every defect with its CSV line;
- `score`: the Kaggle MAE of a CSV against known labels (`fwi score`);
- `make`: `fwi write-csv` = check, write, validate, `<csv>.sources.json`.
"""

from kagglekit.fwi.submission.format import COLUMNS, HEADER, SubmissionError
from kagglekit.fwi.submission.make import sources_path, write_and_validate
from kagglekit.fwi.submission.sample import SampleSubmission, read_sample_submission, sample_submission_ids
from kagglekit.fwi.submission.scale import RangeCheck, check_range
from kagglekit.fwi.submission.score import read_labels, score_submission, score_table
from kagglekit.fwi.submission.validate import Problem, validate_submission
from kagglekit.fwi.submission.write import write_csv

__all__ = [
    "COLUMNS",
    "HEADER",
    "Problem",
    "RangeCheck",
    "SampleSubmission",
    "SubmissionError",
    "check_range",
    "read_labels",
    "read_sample_submission",
    "sample_submission_ids",
    "score_submission",
    "score_table",
    "sources_path",
    "validate_submission",
    "write_and_validate",
    "write_csv",
]
