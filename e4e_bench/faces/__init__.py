"""Face tools: landmarks, FFHQ alignment and the identity crop."""
