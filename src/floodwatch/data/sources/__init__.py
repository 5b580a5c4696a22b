"""One reader per source layout; each builds a lazy ChipDataset of the same `Sample` type."""
