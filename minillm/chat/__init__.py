"""post-training, SFT: the chat format; the SFT stage builds here"""
