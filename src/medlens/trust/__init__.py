"""Trust: answer confidence, calibration, abstention, and sanity/robustness probes.

- ``confidence``: a probability for an answer from the model itself (candidate likelihoods,
  sequence likelihood, self-consistency, verbalised confidence);
- ``calibration``: temperature scaling / isotonic / histogram binning, saved as named profiles
  tied to a fingerprint of what they were fitted on;
- ``abstain``: the reason an answer is withheld below a threshold chosen for a target risk;
- ``metrics``: ECE (equal-width and adaptive), MCE, Brier, NLL, AUROC, risk-coverage, with
  unparsed and abstained answers counted as classes of their own;
- ``probes``: image and question shifts for sanity ("does the image matter?") and robustness;
- ``pairs``: paired evaluation (MediConfusion pair accuracy);
- ``plots`` / ``sections``: reliability diagrams, risk-coverage curves and report sections.

Importing this package imports nothing heavy; matplotlib and scikit-learn load on use.
"""
