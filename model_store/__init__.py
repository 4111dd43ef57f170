"""Everything the trainer and the service share without torch: the versioned model store, its metadata,
the label vocabulary, preprocessing and face detection. Import the submodules directly."""

import os

# onnxruntime (1.32 measured) sends usage telemetry to Microsoft from a background thread unless this is set
# before it is imported; nothing of this project sends anything anywhere. An operator's own value is kept.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
