"""A per-image reference CERTIFY built like Cohen et al.'s ``core.Smooth`` (locuslab/smoothing).

Re-implemented from the structure of the original for the speed comparison in
``bench_certify.py`` (not copied): one image at a time, ``num`` noisy copies made in
batches of ``batch_size`` with ``x.repeat`` and ``torch.randn_like``, predictions moved to
the host and counted there, a Clopper-Pearson bound from statsmodels. Two deliberate
differences, both of which can only make the reference *faster* (so the measured speed-up
of ``lib.smoothing`` is conservative):

* votes are counted with ``numpy.bincount`` (the original loops over the predictions in
  Python), and
* the device is that of the classifier instead of a hard-coded ``'cuda'``.

Like the original, the whole loop runs under ``torch.no_grad`` (so a denoiser that needs
autograd enables it itself, exactly as it does inside ``lib.smoothing.Smooth``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint


class ReferenceSmooth:
    """A smoothed classifier with Gaussian noise, certified one image at a time."""

    ABSTAIN = -1

    def __init__(self, base_classifier: torch.nn.Module, num_classes: int, sigma: float):
        """base_classifier maps [batch x channel x height x width] to [batch x num_classes]."""
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = sigma
        params = list(base_classifier.parameters())
        self.device = params[0].device if params else torch.device("cpu")

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int) -> tuple[int, float]:
        """x: [channel x height x width]. Returns (class or ABSTAIN, l2 radius); with probability
        at least 1 - alpha the class is g(x) and g is constant on the l2 ball of that radius."""
        self.base_classifier.eval()
        counts_selection = self._sample_noise(x, n0, batch_size)
        c_hat = int(counts_selection.argmax())
        counts_estimation = self._sample_noise(x, n, batch_size)
        n_a = int(counts_estimation[c_hat])
        p_a = self._lower_confidence_bound(n_a, n, alpha)
        if p_a < 0.5:
            return self.ABSTAIN, 0.0
        return c_hat, self.sigma * norm.ppf(p_a)

    def _sample_noise(self, x: torch.Tensor, num: int, batch_size: int) -> np.ndarray:
        """Class counts of the base classifier on ``num`` noisy copies of x: ndarray [num_classes]."""
        x = x.to(self.device)
        with torch.no_grad():
            counts = np.zeros(self.num_classes, dtype=int)
            for _ in range(math.ceil(num / batch_size)):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = x.repeat((this_batch_size, 1, 1, 1))
                noise = torch.randn_like(batch) * self.sigma
                predictions = self.base_classifier(batch + noise).argmax(1)
                counts += np.bincount(predictions.cpu().numpy(), minlength=self.num_classes)
            return counts

    def _lower_confidence_bound(self, n_a: int, n: int, alpha: float) -> float:
        return proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
