"""Write TFLite models straight to the flatbuffer format, without TensorFlow.

``ModelBuilder`` turns Keras-like layer calls into a valid int8 (or float32) ``.tflite``
model in milliseconds, so that random-network datasets can be generated at scale:

>>> from perfsage.builder import ModelBuilder
>>> b = ModelBuilder(seed=0, dtype="int8")
>>> x = b.input((1, 49, 10, 1))
>>> x = b.conv2d(x, 8, kernel=3, activation="relu")
>>> data = b.build(outputs=[x])
"""

from perfsage.builder.model_builder import ModelBuilder, TensorRef

__all__ = ["ModelBuilder", "TensorRef"]
