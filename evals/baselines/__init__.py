"""Baselines the suites run side by side with the assistant (see naive_rag)."""
