"""Kafka plumbing: the embedded broker and batched, partition-aware producing."""
