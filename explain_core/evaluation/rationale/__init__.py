"""A QA task whose rationale is known: the answer is fixed by one cue word of the question.

Saliency methods are hard to judge on real data, where nobody knows which words the model
used. Here the passage lists several containers that differ only by colour, and the
question names one colour, so a model that answers correctly must have used that colour:
an explanation that does not rank it near the top is wrong about the model.
`task` generates the questions, `train` fits the tiny model committed under
`tests/data/rationale_model`, `sanity` measures the saliency methods against it.
"""
