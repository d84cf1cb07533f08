"""Training: the masked-diffusion loss (pretraining and SFT), diffu-GRPO, MDPO, checkpoints."""
