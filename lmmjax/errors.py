"""Exception and warning classes users can catch or filter."""


class ModelSpecError(ValueError):
    """The model or data cannot be fitted as given; the message names the culprit."""


class DataWarning(UserWarning):
    """Something was done to the data (rows or columns dropped) or looks risky."""


class FewLevelsWarning(DataWarning):
    """A grouping factor has so few levels that its variance estimate is unstable."""


class ConvergenceWarning(UserWarning):
    """The optimizer stopped without meeting the convergence checks."""


class SingularFitWarning(UserWarning):
    """The estimate lies on the boundary: a variance is 0 or a correlation is +-1."""
