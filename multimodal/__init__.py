"""Vision-language building blocks: CBAM, cross-attention, encoders, heads, decoding."""
