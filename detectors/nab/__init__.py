"""NAB (Numenta Anomaly Benchmark) tooling: a compatible scorer and a runner.

* :mod:`detectors.nab.scorer` — NAB's scoring algorithm (``shared/nab/SCORING.md``):
  windows, probationary period, one-pass threshold optimisation, normalisation.
* :mod:`detectors.nab.runner` — runs a registered online detector over a
  NAB-style ``data/`` directory and writes NAB-format result files.
* :mod:`detectors.nab.corpus` — reading and validating data, windows and results.

Command line: ``python -m detectors.nab score ...`` and ``python -m detectors.nab run ...``.
"""

from detectors.nab.corpus import NabInputError
from detectors.nab.scorer import PROFILES, CorpusScore, FileInput, FileScore, Profile, score_results

__all__ = ["NabInputError", "PROFILES", "CorpusScore", "FileInput", "FileScore", "Profile", "score_results"]
