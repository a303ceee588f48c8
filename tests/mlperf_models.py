"""Keras models shaped like the MLPerf Tiny benchmarks, with random weights (the AOT tests need their
ops and shapes, not their accuracy), reduced where noted to keep the test suite fast.

- ds_cnn: keyword spotting DS-CNN, 49x10x1 MFCC input, conv 10x4 stride 2, 4 depthwise+pointwise blocks.
- mobilenet_v1: visual wake words MobileNetV1 alpha=0.25, at 48x48x3 instead of 96x96x3.
- resnet8: image classification ResNet-8 on 32x32x3, with ADD residuals.
- autoencoder: anomaly detection fully-connected autoencoder, 640 in and out.

`head=False` leaves out the final softmax, so the backbone can be tested on its own.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _keras(seed: int):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    return tf.keras


def _bias():
    import tensorflow as tf

    return tf.keras.initializers.RandomNormal(stddev=0.1)


def _classifier(k, x, classes: int, head: bool):
    x = k.layers.Flatten()(x)
    return k.layers.Dense(classes, activation="softmax" if head else None, bias_initializer=_bias())(x)


def ds_cnn(head: bool = True, filters: int = 64):
    k = _keras(10)
    inputs = k.Input((49, 10, 1))
    x = k.layers.Conv2D(filters, (10, 4), strides=2, padding="same", activation="relu", bias_initializer=_bias())(inputs)
    for _ in range(4):
        x = k.layers.DepthwiseConv2D(3, padding="same", activation="relu", bias_initializer=_bias())(x)
        x = k.layers.Conv2D(filters, 1, activation="relu", bias_initializer=_bias())(x)
    x = k.layers.AveragePooling2D(pool_size=(int(x.shape[1]), int(x.shape[2])))(x)
    return k.Model(inputs, _classifier(k, x, 12, head))


def mobilenet_v1(head: bool = True, size: int = 48, alpha: float = 0.25):
    k = _keras(11)
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
              (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    inputs = k.Input((size, size, 3))
    x = k.layers.Conv2D(int(32 * alpha), 3, strides=2, padding="same", activation="relu6", bias_initializer=_bias())(inputs)
    for filters, stride in blocks:
        x = k.layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6", bias_initializer=_bias())(x)
        x = k.layers.Conv2D(int(filters * alpha), 1, activation="relu6", bias_initializer=_bias())(x)
    x = k.layers.AveragePooling2D(pool_size=(int(x.shape[1]), int(x.shape[2])))(x)
    return k.Model(inputs, _classifier(k, x, 2, head))


def resnet8(head: bool = True):
    k = _keras(12)

    def conv(x, filters, kernel=3, strides=1, activation="relu"):
        return k.layers.Conv2D(filters, kernel, strides=strides, padding="same", activation=activation,
                               bias_initializer=_bias())(x)

    inputs = k.Input((32, 32, 3))
    x = conv(inputs, 16)
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        y = conv(conv(x, filters, strides=strides), filters, activation=None)
        shortcut = x if strides == 1 else conv(x, filters, kernel=1, strides=strides, activation=None)
        x = k.layers.Activation("relu")(k.layers.Add()([y, shortcut]))
    x = k.layers.AveragePooling2D(pool_size=int(x.shape[1]))(x)
    return k.Model(inputs, _classifier(k, x, 10, head))


def autoencoder(width: int = 128, code: int = 8, features: int = 640):
    k = _keras(13)
    layers = [k.Input((features,))]
    for units in (width,) * 4 + (code,) + (width,) * 4:
        layers.append(k.layers.Dense(units, activation="relu", bias_initializer=_bias()))
    layers.append(k.layers.Dense(features, bias_initializer=_bias()))
    return k.Sequential(layers)
