"""The errors a command line prints as one line (exit status 2) instead of a traceback: what was wrong and what to
do. Data and model loaders raise their own (`DataUnavailableError`, `ModelUnavailableError`); these are the rest."""


class SetupError(RuntimeError):
    """The run cannot be set up as asked (a device this torch build cannot use, a batch that does not divide over
    the processes, targets a model lacks, a changed data source); nothing has been written."""
