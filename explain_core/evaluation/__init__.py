"""Offline studies of answers and explanations: `qa-eval` (SQuAD EM/F1 and faithfulness),
rank statistics, the known-rationale task and its sanity checks, the confidence study.
Uses the engine (TensorFlow); nothing here runs in the bot or the worker.
"""
