"""What front ends show: the answer summary and the excerpts around an answer.

No TensorFlow and no PIL here, so the bot may import this package.
"""
