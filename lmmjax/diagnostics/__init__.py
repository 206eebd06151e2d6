"""Diagnostics: residuals, influence, red flags, plots and the report."""
from .flags import FlagList, RedFlag, check  # noqa: F401
