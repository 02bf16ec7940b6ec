"""Text to video: movie-clip descriptions -> diverse prompts -> an image -> a short clip (mp4, gif), scored.

Steps (one module each, one CLI command and one Kubeflow component each):
`embed` (MiniLM sentence embeddings: drop near-duplicates, pick a diverse sample, nearest real
descriptions), `image` (Stable Diffusion text-to-image), `animate` (image-to-video with SVD or
LTX, or one-stage text-to-video with AnimateDiff or Wan), `export` (mp4, looping gif, frame
strip) and `evaluate` (frame count and fps, temporal consistency, prompt diversity, CLIP
text-frame agreement) with a gallery report.
"""
