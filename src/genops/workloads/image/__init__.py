"""Class-conditional image generation: data, a DDPM with classifier-free guidance, and the
representation and quality checks of the ``image-diffusion`` pipeline."""
