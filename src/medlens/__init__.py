"""medlens: put any vision-language model in front of real medical studies, safely, and
measure it as the literature does.

Importing medlens does nothing heavy: torch, transformers and pydicom load only when a
stage that needs them runs.
"""

__version__ = "0.1.0"
