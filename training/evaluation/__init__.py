"""`hearth eval`: multiple-choice, open-ended review, Text-to-SQL execution accuracy, report and gate.

Torch is imported only by the scorers that run Hugging Face models; GGUF variants go through
llama-cpp-python (and, for Text-to-SQL, a real Hearth server), like serving.
"""
