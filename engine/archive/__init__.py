"""The loan file archive: BagIt packages with a signed, timestamped tag manifest, and their storage."""
