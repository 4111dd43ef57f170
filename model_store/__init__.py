"""Everything the trainer and the service share without torch: the versioned model store, its metadata,
the label vocabulary, preprocessing and face detection. Import the submodules directly."""
