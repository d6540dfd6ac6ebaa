"""nca-gradio: Neural Cellular Automata textures, as a library, a command and a Gradio studio."""

__version__ = "0.1.0"
