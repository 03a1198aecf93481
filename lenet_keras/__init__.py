"""lenet_keras: LeNet-5 and its family of small CNNs in Keras 3.

Stages, one module each: ``models`` (builders and registry), ``data`` (tf.data input
pipelines), ``train`` (fit into a run directory), ``export`` (SavedModel / TFLite),
``plots`` (matplotlib figures). Heavy imports live inside those modules so that
``import lenet_keras`` stays cheap.
"""

__version__ = "0.1.0"
