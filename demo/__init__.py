"""Gradio demo comparing a NEAT and a LoRA adapter on one base model: `python -m demo.app`."""
