"""LLM features: transcript summaries through any OpenAI-compatible chat API."""
