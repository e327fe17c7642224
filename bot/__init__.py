"""The Slack bot: Bolt listeners that validate and queue questions, and the result consumer
that posts answers. Never imports TensorFlow (see tests/test_layering.py)."""
