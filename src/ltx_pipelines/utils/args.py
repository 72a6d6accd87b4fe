"""The reference package's ``ltx_pipelines.utils.args`` names, on our CLI layer.

Code written for ltx-pipelines 1.0.0 imports ``ImageConditioningInput`` (and at times the argparse
actions and parser builders) from here.
"""

from __future__ import annotations

from ltx_pipelines.utils.conditioning import ImageConditioningInput

__all__ = ["ImageConditioningInput"]
