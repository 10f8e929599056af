"""Open-Sora Plan v1.1 backbone: Latte DiT through diffusers, a native CausalVAE, T5."""
