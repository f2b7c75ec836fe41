"""Classifiers that turn a frame into detections (hat, mask, open storage, pests)."""
