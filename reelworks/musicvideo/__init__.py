"""Music video: an LLM plans scenes from lyrics, Stable Diffusion walks between prompt embeddings, frames render into a video synced to the song."""
