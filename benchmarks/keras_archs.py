"""Public architectures written out in Keras where Keras Applications has no builder.

Each function returns an uncompiled ``keras.Model`` with batch 1, following the layer
sequence of the paper or reference code it names; widths and input sizes are arguments so
the benchmark can vary them. Used by :mod:`keras_zoo`; TensorFlow comes from the test extra.

References:
    MLPerf Tiny v1.0 reference models (Banbury et al., 2021): DS-CNN keyword spotting
    (after Zhang et al., "Hello Edge", 2017), ResNet-8 for CIFAR-10, the FC autoencoder for
    ToyADMOS anomaly detection; ViT (Dosovitskiy et al., 2021); MobileViT (Mehta & Rastegari,
    2022); U-Net (Ronneberger et al., 2015); FSRCNN (Dong et al., 2016); ESPCN (Shi et al.,
    2016); SSD / SSDLite (Liu et al., 2016; Sandler et al., 2018); ShuffleNetV2 (Ma et al.,
    2018); TCN (Bai et al., 2018); ResNet-18 (He et al., 2016); SqueezeNet 1.1 (Iandola et
    al., 2016); RegNetX (Radosavovic et al., 2020).
"""

from __future__ import annotations

import keras
from keras import layers as L  # noqa: N812 - the usual Keras alias


def _input(shape: tuple[int, ...]):
    return keras.Input(shape=shape, batch_size=1)


def _conv_bn_relu(x, filters: int, kernel, strides=1, *, padding: str = "same"):
    x = L.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU()(x)


# -- MLPerf Tiny ---------------------------------------------------------------------------


def ds_cnn_kws(filters: int = 64, blocks: int = 4, classes: int = 12) -> keras.Model:
    """DS-CNN for keyword spotting on 49x10 MFCCs (MLPerf Tiny KWS reference; S: 64, M: 172)."""
    inp = _input((49, 10, 1))
    x = _conv_bn_relu(inp, filters, (10, 4), (2, 2))
    for _ in range(blocks):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = _conv_bn_relu(x, filters, 1)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="ds_cnn")


def resnet8_cifar(widths: tuple[int, int, int] = (16, 32, 64), classes: int = 10) -> keras.Model:
    """ResNet-8 for 32x32 CIFAR-10 (MLPerf Tiny image-classification reference)."""
    inp = _input((32, 32, 3))
    x = _conv_bn_relu(inp, widths[0], 3)
    for stage, filters in enumerate(widths):
        strides = 1 if stage == 0 else 2
        y = _conv_bn_relu(x, filters, 3, strides)
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if strides != 1:
            x = L.Conv2D(filters, 1, strides=strides)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(x.shape[1])(x))
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="resnet8")


def fc_autoencoder(inputs: int = 640, hidden: int = 128, bottleneck: int = 8) -> keras.Model:
    """Dense autoencoder on 5 frames x 128 mels (MLPerf Tiny anomaly-detection reference)."""
    inp = _input((inputs,))
    x = inp
    for units in (hidden,) * 4 + (bottleneck,) + (hidden,) * 4:
        x = L.ReLU()(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inp, L.Dense(inputs)(x), name="fc_autoencoder")


# -- attention -----------------------------------------------------------------------------


class PositionEmbedding(L.Layer):
    """A learned embedding added to every token (ViT's position embedding)."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=tuple(input_shape[1:]), initializer="random_normal")

    def call(self, x):
        return x + self.table


def _transformer(x, dim: int, heads: int, mlp_ratio: int, attention_axes=None,
                 activation: str = "gelu"):
    """Pre-norm encoder block: LayerNorm, multi-head attention, LayerNorm, MLP (GELU in ViT)."""
    y = L.LayerNormalization(epsilon=1e-6)(x)
    y = L.MultiHeadAttention(heads, dim // heads, attention_axes=attention_axes)(y, y)
    x = L.Add()([x, y])
    y = L.LayerNormalization(epsilon=1e-6)(x)
    y = L.Dense(dim * mlp_ratio, activation=activation)(y)
    return L.Add()([x, L.Dense(dim)(y)])


def vit(image: int = 32, patch: int = 4, dim: int = 64, depth: int = 4, heads: int = 4,
        mlp_ratio: int = 2, classes: int = 10) -> keras.Model:
    """A small Vision Transformer: patch embedding, position embedding, encoder, mean pool."""
    inp = _input((image, image, 3))
    x = L.Conv2D(dim, patch, strides=patch)(inp)
    x = PositionEmbedding()(L.Reshape(((image // patch) ** 2, dim))(x))
    for _ in range(depth):
        x = _transformer(x, dim, heads, mlp_ratio)
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inp, L.Dense(classes)(x), name="vit")


def _inverted_residual(x, filters: int, strides: int, expand: int = 4):
    """MobileNetV2's block (MobileViT uses it between its transformer blocks)."""
    y = L.Activation("swish")(L.BatchNormalization()(
        L.Conv2D(x.shape[-1] * expand, 1, use_bias=False)(x)))
    y = L.Activation("swish")(L.BatchNormalization()(
        L.DepthwiseConv2D(3, strides, padding="same", use_bias=False)(y)))
    y = L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(y))
    return L.Add()([x, y]) if strides == 1 and x.shape[-1] == filters else y


def _mobilevit_block(x, dim: int, depth: int, patch: int = 2):
    """Local 3x3 conv, unfold into patches, transformers over patches, fold, fuse with input."""
    h, w, c = x.shape[1:]
    y = L.Conv2D(c, 3, padding="same", activation="swish")(x)
    y = L.Conv2D(dim, 1)(y)
    n = (h // patch) * (w // patch)
    y = L.Reshape((h // patch, patch, w // patch, patch, dim))(y)
    y = L.Permute((2, 4, 1, 3, 5))(y)                      # (p, p, h/p, w/p, d)
    y = L.Reshape((patch * patch, n, dim))(y)
    for _ in range(depth):
        # attention among patches at one pixel position; MobileViT uses Swish throughout
        y = _transformer(y, dim, heads=4, mlp_ratio=2, attention_axes=(2,), activation="swish")
    y = L.LayerNormalization(epsilon=1e-6)(y)
    y = L.Reshape((patch, patch, h // patch, w // patch, dim))(y)
    y = L.Permute((3, 1, 4, 2, 5))(y)
    y = L.Reshape((h, w, dim))(y)
    y = L.Conv2D(c, 1, activation="swish")(y)
    return L.Conv2D(c, 3, padding="same", activation="swish")(L.Concatenate()([x, y]))


def mobilevit(image: int = 96, widths: tuple[int, ...] = (16, 24, 48, 64, 80),
              dims: tuple[int, int] = (64, 80), classes: int = 10) -> keras.Model:
    """MobileViT-XXS-like: MV2 blocks, then MobileViT blocks at 1/8 and 1/16 resolution."""
    inp = _input((image, image, 3))
    x = L.Activation("swish")(L.BatchNormalization()(
        L.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False)(inp)))
    x = _inverted_residual(x, widths[0], 1, expand=2)
    x = _inverted_residual(x, widths[1], 2, expand=2)
    x = _inverted_residual(x, widths[1], 1, expand=2)
    x = _inverted_residual(x, widths[2], 2, expand=2)
    x = _mobilevit_block(x, dims[0], depth=2)
    x = _inverted_residual(x, widths[3], 2, expand=2)
    x = _mobilevit_block(x, dims[1], depth=2)
    x = L.Conv2D(widths[4] * 4, 1, activation="swish")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes)(x), name="mobilevit")


# -- dense prediction ----------------------------------------------------------------------


def unet(image: int = 64, channels: int = 3, base: int = 16, levels: int = 4,
         classes: int = 2) -> keras.Model:
    """U-Net: conv pairs, max-pool down, transposed conv up, skip concatenations."""
    inp = _input((image, image, channels))
    x, skips = inp, []
    for level in range(levels):
        x = _conv_bn_relu(_conv_bn_relu(x, base << level, 3), base << level, 3)
        skips.append(x)
        x = L.MaxPooling2D(2)(x)
    x = _conv_bn_relu(_conv_bn_relu(x, base << levels, 3), base << levels, 3)
    for level in reversed(range(levels)):
        x = L.Conv2DTranspose(base << level, 2, strides=2, padding="same")(x)
        x = L.Concatenate()([skips[level], x])
        x = _conv_bn_relu(_conv_bn_relu(x, base << level, 3), base << level, 3)
    return keras.Model(inp, L.Conv2D(classes, 1, activation="softmax")(x), name="unet")


def fsrcnn(image: int = 64, d: int = 56, s: int = 12, m: int = 4, scale: int = 2,
           ) -> keras.Model:
    """FSRCNN(d, s, m): feature extraction, shrink, m mapping layers, expand, deconvolution."""
    inp = _input((image, image, 1))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(d, 5, padding="same")(inp))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(s, 1)(x))
    for _ in range(m):
        x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(s, 3, padding="same")(x))
    x = L.PReLU(shared_axes=[1, 2])(L.Conv2D(d, 1)(x))
    out = L.Conv2DTranspose(1, 9, strides=scale, padding="same")(x)
    return keras.Model(inp, out, name="fsrcnn")


def espcn(image: int = 64, scale: int = 3, filters: tuple[int, int] = (64, 32)) -> keras.Model:
    """ESPCN: two tanh convolutions, then a sub-pixel convolution (DEPTH_TO_SPACE)."""
    import tensorflow as tf

    inp = _input((image, image, 1))
    x = L.Conv2D(filters[0], 5, padding="same", activation="tanh")(inp)
    x = L.Conv2D(filters[1], 3, padding="same", activation="tanh")(x)
    x = L.Conv2D(scale * scale, 3, padding="same")(x)
    out = L.Lambda(lambda t: tf.nn.depth_to_space(t, scale))(x)
    return keras.Model(inp, out, name="espcn")


def ssdlite(image: int = 128, alpha: float = 0.35, anchors: int = 6, classes: int = 21,
            extra: tuple[int, ...] = (256, 128)) -> keras.Model:
    """SSDLite on a MobileNetV2 backbone: separable box and class heads on 4 feature maps.

    Two outputs, as detectors ship them before post-processing: box offsets (N, 4) and
    class scores (N, classes).
    """
    backbone = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(image, image, 3), alpha=alpha)
    maps = [backbone.get_layer("block_13_expand_relu").output, backbone.output]
    x = backbone.output
    for filters in extra:
        x = _conv_bn_relu(x, filters // 2, 1)
        x = L.ReLU(6.0)(L.BatchNormalization()(
            L.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)))
        x = _conv_bn_relu(x, filters, 1)
        maps.append(x)
    boxes, scores = [], []
    for fmap in maps:
        for width, out in ((4, boxes), (classes, scores)):
            y = L.ReLU(6.0)(L.BatchNormalization()(
                L.DepthwiseConv2D(3, padding="same", use_bias=False)(fmap)))
            y = L.Conv2D(anchors * width, 1)(y)
            out.append(L.Reshape((-1, width))(y))
    boxes = L.Concatenate(axis=1)(boxes)
    scores = L.Softmax()(L.Concatenate(axis=1)(scores))
    return keras.Model(backbone.input, [boxes, scores], name="ssdlite")


# -- channel shuffle, temporal, plain CNNs -------------------------------------------------


class ChannelSplit(L.Layer):
    """Split the channels in two halves (SPLIT), as ShuffleNetV2's stride-1 unit does."""

    def call(self, x):
        return keras.ops.split(x, 2, axis=-1)


def _shuffle(x, groups: int = 2):
    h, w, c = x.shape[1:]
    x = L.Reshape((h, w, groups, c // groups))(x)
    x = L.Permute((1, 2, 4, 3))(x)
    return L.Reshape((h, w, c))(x)


def _shuffle_branch(x, filters: int, strides: int):
    x = _conv_bn_relu(x, filters, 1)
    x = L.BatchNormalization()(L.DepthwiseConv2D(3, strides, padding="same", use_bias=False)(x))
    return _conv_bn_relu(x, filters, 1)


def shufflenet_v2(image: int = 96, widths: tuple[int, int, int] = (48, 96, 192),
                  repeats: tuple[int, int, int] = (4, 8, 4), last: int = 1024,
                  classes: int = 10) -> keras.Model:
    """ShuffleNetV2 (0.5x: 48/96/192, 1.0x: 116/232/464): channel split, concat, shuffle."""
    inp = _input((image, image, 3))
    x = _conv_bn_relu(inp, 24, 3, 2)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    for filters, repeat in zip(widths, repeats, strict=True):
        half = filters // 2
        left = L.BatchNormalization()(L.DepthwiseConv2D(3, 2, padding="same",
                                                        use_bias=False)(x))
        left = _conv_bn_relu(left, half, 1)
        x = _shuffle(L.Concatenate()([left, _shuffle_branch(x, half, 2)]))
        for _ in range(repeat - 1):
            a, b = ChannelSplit()(x)
            x = _shuffle(L.Concatenate()([a, _shuffle_branch(b, half, 1)]))
    x = L.GlobalAveragePooling2D()(_conv_bn_relu(x, last, 1))
    return keras.Model(inp, L.Dense(classes)(x), name="shufflenet_v2")


def tcn(steps: int = 128, features: int = 9, filters: int = 32, kernel: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8), classes: int = 6) -> keras.Model:
    """Temporal convolutional network: dilated causal Conv1D residual blocks (Bai et al.)."""
    inp = _input((steps, features))
    x = inp
    for rate in dilations:
        y = L.Conv1D(filters, kernel, padding="causal", dilation_rate=rate, activation="relu")(x)
        y = L.Conv1D(filters, kernel, padding="causal", dilation_rate=rate, activation="relu")(y)
        if x.shape[-1] != filters:
            x = L.Conv1D(filters, 1)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="tcn")


def cnn_relu_bn(image: int = 64, widths: tuple[int, ...] = (32, 64, 128),
                classes: int = 10) -> keras.Model:
    """The Keras tutorial CNN with BatchNorm after the ReLU (the converter cannot fold it)."""
    inp = _input((image, image, 3))
    x = inp
    for filters in widths:
        for _ in range(2):
            x = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", activation="relu")(x))
        x = L.MaxPooling2D(2)(x)
    x = L.Dropout(0.25)(L.Flatten()(x))
    x = L.BatchNormalization()(L.Dense(128, activation="relu")(x))
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="cnn_relu_bn")


def resnet18(image: int = 128, width: int = 64, classes: int = 1000) -> keras.Model:
    """ResNet-18: 7x7 stem, max-pool, four stages of two basic blocks, global pool."""
    inp = _input((image, image, 3))
    x = _conv_bn_relu(inp, width, 7, 2)
    x = L.MaxPooling2D(3, 2, padding="same")(x)
    for stage in range(4):
        filters = width << stage
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            y = _conv_bn_relu(x, filters, 3, strides)
            y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(y))
            if strides != 1:
                x = L.BatchNormalization()(L.Conv2D(filters, 1, strides, use_bias=False)(x))
            x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="resnet18")


def squeezenet(image: int = 128, classes: int = 1000) -> keras.Model:
    """SqueezeNet 1.1: fire modules (1x1 squeeze, parallel 1x1 and 3x3 expand, concat)."""
    inp = _input((image, image, 3))
    x = L.Conv2D(64, 3, strides=2, activation="relu")(inp)
    x = L.MaxPooling2D(3, 2)(x)
    fires = [(16, 64), (16, 64), None, (32, 128), (32, 128), None,
             (48, 192), (48, 192), (64, 256), (64, 256)]
    for fire in fires:
        if fire is None:
            x = L.MaxPooling2D(3, 2)(x)
            continue
        squeeze, expand = fire
        s = L.Conv2D(squeeze, 1, activation="relu")(x)
        x = L.Concatenate()([L.Conv2D(expand, 1, activation="relu")(s),
                             L.Conv2D(expand, 3, padding="same", activation="relu")(s)])
    x = L.Conv2D(classes, 1, activation="relu")(L.Dropout(0.5)(x))
    return keras.Model(inp, L.Softmax()(L.GlobalAveragePooling2D()(x)), name="squeezenet")


def regnetx(image: int = 128, widths: tuple[int, ...] = (24, 56, 152, 368),
            depths: tuple[int, ...] = (1, 1, 4, 7), group_width: int = 8,
            classes: int = 1000) -> keras.Model:
    """RegNetX (200MF by default): X blocks of 1x1, grouped 3x3, 1x1 with residuals."""
    inp = _input((image, image, 3))
    x = _conv_bn_relu(inp, 32, 3, 2)
    for width, depth in zip(widths, depths, strict=True):
        for block in range(depth):
            strides = 2 if block == 0 else 1
            y = _conv_bn_relu(x, width, 1)
            y = L.Conv2D(width, 3, strides, padding="same", groups=width // group_width,
                         use_bias=False)(y)
            y = L.ReLU()(L.BatchNormalization()(y))
            y = L.BatchNormalization()(L.Conv2D(width, 1, use_bias=False)(y))
            if strides != 1 or x.shape[-1] != width:
                x = L.BatchNormalization()(L.Conv2D(width, 1, strides, use_bias=False)(x))
            x = L.ReLU()(L.Add()([x, y]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="regnetx")


def lstm_kws(units: int = 64, classes: int = 12, unroll: bool = False) -> keras.Model:
    """LSTM keyword spotter on 49x10 MFCCs (Hello Edge's LSTM baseline), fused or unrolled."""
    inp = _input((49, 10))
    x = L.LSTM(units, unroll=unroll)(inp)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="lstm_kws")


def gru_kws(units: int = 64, classes: int = 12) -> keras.Model:
    """GRU keyword spotter, unrolled (the int8 converter has no fused GRU)."""
    inp = _input((49, 10))
    x = L.GRU(units, unroll=True)(inp)
    return keras.Model(inp, L.Dense(classes, activation="softmax")(x), name="gru_kws")
