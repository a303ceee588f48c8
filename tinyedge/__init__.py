"""tinyedge: take a trained TensorFlow/Keras model onto a microcontroller and prove it runs there."""

__version__ = "0.1.0"
