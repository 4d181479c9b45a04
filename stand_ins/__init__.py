"""Stand-ins for what cannot be downloaded here. NOT the paper: read the paper's modules first.

- `regions.py`: class-agnostic masks without SAM's weights, in SAM's own form (N, H, W) bool, for
  sam_teacher.py's cache: PiDiNet regions (the default), felzenszwalb superpixels, and the
  analysis-only oracle (connected components of the ground truth, which reads labels).
- `pidinet.py`: the class-agnostic edge detector behind the PiDiNet regions (its released BSDS500
  weights; no football data).
- `synthetic.py`: synthetic football scenes with exact labels, in FSSOD's item format: the
  no-download default of train.py and the frames of the tests.

Every result says which of these it used (its mask source and its data).
"""
