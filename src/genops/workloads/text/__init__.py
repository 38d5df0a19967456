"""Text generation: a corpus spec and its checks, a byte-level BPE tokenizer and a GPT-2-style
decoder built with Hugging Face ``transformers``, word-level perplexity, diversity and
memorisation, gender-association gates, and serving of the ``text-lm`` pipeline."""
