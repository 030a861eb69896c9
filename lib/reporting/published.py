"""Published reference numbers and quotations of the papers, each with its place and setting.

:data:`PAPERS` cites each paper; :data:`PUBLISHED` holds published certified accuracies (%), copied
verbatim for *labelled reference rows only* (``register_table(reference=...)``, via
:func:`published_rows`), never mixed with our results; :data:`QUOTES` holds what the papers say,
verbatim, printed beside our verdicts by :func:`quote`.
"""
from __future__ import annotations

__all__ = ["PAPERS", "PUBLISHED", "PUBLISHED_AS_OURS", "QUOTES", "quote", "published_rows"]

#: The papers, cited by title, authors and year (and arXiv id where the text gives it).
PAPERS = {
    "lee": "Lee, *Provable defense by denoised smoothing with learned score function* (2021, no arXiv id)",
    "sheikholeslami": ("Sheikholeslami, Lin, Metzen, Zhang & Kolter, *Denoised smoothing with sample rejection for "
                       "robustifying pretrained classifiers* (NeurIPS 2022 workshop, OpenReview i1lF1WqMw3j)"),
    "saremi": ("Saremi & Srivastava, *Provable robust classification via learned smoothed densities* "
               "(2020, arXiv:2005.04504)"),
    "lecture14": "Lecture 14, *Certified defenses III: randomized smoothing* (course lecture notes, 13 November 2019)",
}

#: Published certified accuracies (%), copied verbatim for *labelled reference rows only*
#: (``register_table(reference=...)``), never mixed with our results. Each table carries the
#: place it is printed at and the setting it was obtained in (data set, model, n, alpha, test points).
#: Keys of its rows are "<source>: <row>", where <row> equals the label of our corresponding row
#: when there is one, or is mapped to it by the table's ``"ours"`` (:data:`PUBLISHED_AS_OURS`), so that
#: :func:`table_finding` can compare orderings.
PUBLISHED = {
    "lee_table1": {
        "paper": "lee", "place": "Table 1, p. 4 (settings: appendix C)",
        "radii": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
        "settings": {"data": "CIFAR-10", "model": "ResNet-110 classifier (denoisers: score network / Salman et al.)",
                     "n": 10_000, "n0": 100, "alpha": 0.001, "test points": "not stated"},
        "rows": {
            "Lee T1 CIFAR-10: white-box": [59, 45, 31, 21, 18, 13],
            "Lee T1 CIFAR-10: denoised smoothing, query access (Salman et al.)": [45, 20, 15, 13, 11, 10],
            "Lee T1 CIFAR-10: denoised smoothing, full access (Salman et al.)": [56, 41, 28, 19, 16, 13],
            "Lee T1 CIFAR-10: one-step score": [60, 42, 28, 19, 11, 6],
        },
        "ours": {"denoised smoothing, query access (Salman et al.)": "MSE+Stab denoiser (query access)",
                 "denoised smoothing, full access (Salman et al.)": "MSE+Stab denoiser (full access)"},
    },
    "lee_table2": {
        "paper": "lee", "place": "Table 2, p. 4 (settings: appendix C)",
        "radii": [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
        "settings": {"data": "ImageNet", "model": "ResNet-50 classifier (pretrained, PyTorch)",
                     "n": 10_000, "n0": 100, "alpha": 0.001, "test points": "not stated"},
        "rows": {
            "Lee T2 ImageNet: white-box": [62, 52, 45, 39, 34, 29],
            "Lee T2 ImageNet: denoised smoothing, query access (Salman et al.)": [48, 31, 19, 12, 7, 4],
            "Lee T2 ImageNet: denoised smoothing, full access (Salman et al.)": [50, 33, 20, 14, 11, 6],
            "Lee T2 ImageNet: one-step score": [56, 41, 30, 24, 17, 11],
        },
        "ours": {"denoised smoothing, query access (Salman et al.)": "MSE+Stab denoiser (query access)",
                 "denoised smoothing, full access (Salman et al.)": "MSE+Stab denoiser (full access)"},
    },
    "saremi_table1": {
        "label": "Saremi & Srivastava T1", "paper": "saremi", "place": "Table 1, §2.4 (compiled from Figure 2)",
        "radii": [0.5, 1.0, 1.5, 2.0],
        "settings": {"data": "MNIST", "model": "linear classifier h; g[π] with a learned DEEN",
                     "n": 100_000, "alpha": 0.001, "test points": "the MNIST test set (10,000)"},
        "rows": {"g[h]": [71, 30, 7, 1], "g[π]": [88, 77, 56, 28]},
        "ours": {"g[h]": "g[h], best over σ", "g[π]": "g[π], best over σ"},
    },
    "saremi_table2": {
        "label": "Saremi & Srivastava T2", "paper": "saremi", "place": "Table 2, §3.2 (compiled from Figure 5)",
        "radii": [0.5, 1.0, 1.5, 2.0],
        "settings": {"data": "MNIST", "model": "XHAT_ε (adversarially trained classifier behind the DEEN's x̂)",
                     "n": 1_000_000, "alpha": "not stated in Table 2 or Figure 5",
                     "test points": "the MNIST test set"},
        "rows": {"XHAT_ε": [98, 95, 81, 57],
                 "ABS (empirical robust accuracy, not certified)": [92, 85, 80, 67]},
    },
}
for _k, _t in PUBLISHED.items():
    _s = _t["settings"]
    _t["source"] = (f"{PAPERS[_t['paper']]}, {_t['place']}: " + ", ".join(f"{k}={v:,}" if isinstance(v, int)
                                                                           else f"{k}={v}" for k, v in _s.items()))

#: What the papers say, verbatim, with the place it is said: printed beside our verdict
#: (:func:`quote`), never paraphrased into a claim the paper does not make.
QUOTES = {
    "rejection_abstract": {
        "paper": "sheikholeslami", "place": "abstract",
        "text": "Tests on CIFAR10 dataset show considerable improvements in natural accuracy without degrading "
                "adversarial performance, with affordably-trainable rejectors, specially for medium and large "
                "values of noise parameter σ."},
    "rejection_experiments": {
        "paper": "sheikholeslami", "place": "§6.3 (experiment details, Figures 4-5)",
        "text": "With σ being 0.25 or 0.5, the gain of certified accuracy with rejection is more significant "
                "especially at radius 0."},
    "rejection_cost": {
        "paper": "sheikholeslami", "place": "§6.3 and Table 1",
        "text": "We chose T = 20, leading to a per-epoch training-time of 350 seconds for the DnCNN-based denoisers"},
    "lee_d1": {
        "paper": "lee", "place": "appendix D.1, Figure 2",
        "text": "the multi-scale DSM achieves better performance"},
    "lee_d2": {
        "paper": "lee", "place": "appendix D.2, Figure 3",
        "text": "We found out that using stronger classifier achieves better certified accuracy"},
    "lee_white_box": {
        "paper": "lee", "place": "§1 (introduction); Figure 1",
        "text": "we compare with the random-ensemble based method, which we refer to white-box smoothing, and "
                "show that our method works are comparable to them."},
    "lee_tables": {
        "paper": "lee", "place": "§4, Tables 1-2",
        "text": "We found out that for CIFAR-10, our method achieves better performance than original denoised "
                "smoothing, while is on par with white-box smoothing. Also, for ImageNet, our method achieves better "
                "performance than original denoised smoothing, yet is slightly below than white-box smoothing."},
    "lee_multi_step": {
        "paper": "lee", "place": "§4, Figure 1",
        "text": "The performance of multi-step denoiser for denoised smoothing. The blue lines are our methods, "
                "and red lines are white-box smoothing"},
    "saremi_table2": {
        "paper": "saremi", "place": "§3.2, Figure 5 and Table 2",
        "text": "As observed in Figure 5, the best certified accuracies are obtained for XHAT_ε"},
}


def quote(key: str) -> str:
    """A quotation of :data:`QUOTES` with its place: '<paper>, <place>: "<text>"'."""
    if key not in QUOTES:
        raise ValueError(f"quotation must be one of {sorted(QUOTES)}, got {key!r}")
    q = QUOTES[key]
    return f'{PAPERS[q["paper"]]}, {q["place"]}: "{q["text"].rstrip(".")}"'


def published_rows(*keys: str) -> tuple[dict, str]:
    """(reference rows, source text) of one or more :data:`PUBLISHED` tables, for ``register_table``."""
    rows, sources = {}, []
    for k in keys:
        if k not in PUBLISHED:
            raise ValueError(f"published table must be one of {sorted(PUBLISHED)}, got {k!r}")
        pre = f"{PUBLISHED[k]['label']}: " if "label" in PUBLISHED[k] else ""
        rows.update({f"{pre}{label}": v for label, v in PUBLISHED[k]["rows"].items()})
        sources.append(PUBLISHED[k]["source"])
    return rows, "; ".join(sources)


#: published row name -> the label of our row that measures it, where the two are named differently
PUBLISHED_AS_OURS = {row: ours for t in PUBLISHED.values() for row, ours in t.get("ours", {}).items()}
