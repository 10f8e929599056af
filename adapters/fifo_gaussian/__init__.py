"""A reference backbone whose latents follow a known stationary Gaussian process over time, so
the exact denoiser is closed form and the whole FIFO engine can be tested statistically."""
