"""Medical image segmentation: 3D U-Net on KiTS19 (reference) and a mini 3D U-Net on generated CT-like volumes."""

SCALES = ("mini", "reference")
