"""The reference's ``ltx_pipelines.utils.args``; it lives in :mod:`ltx_pipelines.engine.reference_args`."""

from ltx_pipelines.engine.reference_args import *  # noqa: F403
from ltx_pipelines.engine.reference_args import __all__  # noqa: F401
