"""The engineering around the paper. NOT the paper: read the paper's modules first.

- `files.py`: files written atomically, and a user's mistakes and Ctrl-C reported in one line.
- `mask_files.py`: the file format of the mask cache (one deterministic `.npz` a frame).
- `fast_inference.py`: an inference copy of a trained network that computes the same logits faster
  (batch norms and padding folded into the convolutions); predict.py and studies/benchmark.py use it.
- `lraspp.py`: torchvision's LRASPP-MobileNetV3, the real-time segmenter the student is measured against.

None of them imports a chapter of the paper (mask_files.py stores mask_set.py's MaskSet).
"""
