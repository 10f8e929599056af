"""Prompt timelines from text files: ``fifo-diffusion generate @story.txt``."""
