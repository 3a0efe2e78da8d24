"""Exceptions that carry a message meant for the user (the CLI prints it and exits with code 2)."""


class ScalefitInputError(ValueError):
    """Input the user can fix: a bad runs table, a bad option, a fit that cannot be made from the data.

    The message names the file, the column or row, and what to do.
    """


class RunsTableError(ScalefitInputError):
    """A runs table that cannot be read or fails validation."""


class FitError(ScalefitInputError):
    """A fit that cannot be made from the given data (degenerate input, too few points)."""
