"""The network of Fig. 3: expression encoder, spatial feature map, classifier, upsampling.

An expression is encoded by an embedding + LSTM (final hidden state, L2-normalised). The
image goes through a fully convolutional backbone; the feature map is L2-normalised at each
location and the spatial coordinate channels are appended. The expression vector is tiled
over the map and concatenated; a two-layer 1x1 convolutional classifier gives the coarse
response map (``lowres`` stage). The ``highres`` stage upsamples it to the input size with a
learned deconvolution initialised as bilinear upsampling.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone
from .config import STAGES, ConfigError, ModelConfig
from .text import tokenize


def spatial_coordinates(height: int, width: int, variant: str) -> torch.Tensor:
    """Return the spatial channels (C x height x width) of a feature map.

    ``xy2``: x and y of each cell, from (-1, -1) at the upper-left cell to (+1, +1) at the
    lower-right cell. ``xy8``: the released code's xmin, ymin, xmax, ymax, xctr, yctr, 1/W, 1/H
    of each cell in [-1, 1]. ``none``: no channels.
    """
    if variant == "none":
        return torch.zeros(0, height, width)
    if variant == "xy2":
        xs = torch.linspace(-1.0, 1.0, width) if width > 1 else torch.zeros(1)
        ys = torch.linspace(-1.0, 1.0, height) if height > 1 else torch.zeros(1)
        return torch.stack([xs.view(1, -1).expand(height, width),
                            ys.view(-1, 1).expand(height, width)])
    if variant == "xy8":
        col = torch.arange(width, dtype=torch.float32).view(1, -1).expand(height, width)
        row = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width)
        xmin, xmax = col / width * 2 - 1, (col + 1) / width * 2 - 1
        ymin, ymax = row / height * 2 - 1, (row + 1) / height * 2 - 1
        return torch.stack([xmin, ymin, xmax, ymax, (xmin + xmax) / 2, (ymin + ymax) / 2,
                            torch.full_like(xmin, 1.0 / width),
                            torch.full_like(xmin, 1.0 / height)])
    raise ConfigError(f"unknown spatial variant {variant!r}")


def bilinear_kernel(stride: int) -> torch.Tensor:
    """Return the 2s x 2s bilinear upsampling filter for ``stride`` s."""
    center = stride - 0.5
    taps = 1.0 - (torch.arange(2 * stride, dtype=torch.float32) - center).abs() / stride
    return taps.view(-1, 1) * taps.view(1, -1)


class BilinearDeconv(nn.Module):
    """Learned upsampling by ``stride`` (ConvTranspose2d: kernel 2s, stride s, padding s/2).

    Initialised with the bilinear filter, it equals bilinear upsampling
    (``F.interpolate(..., mode="bilinear", align_corners=False)``) away from the border.
    """

    def __init__(self, stride: int) -> None:
        """Build the deconvolution for an even ``stride``."""
        super().__init__()
        if stride < 2 or stride % 2:
            raise ConfigError(f"BilinearDeconv needs an even stride >= 2, got {stride}")
        self.stride = stride
        self.deconv = nn.ConvTranspose2d(1, 1, kernel_size=2 * stride, stride=stride,
                                         padding=stride // 2, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the filter to bilinear upsampling."""
        with torch.no_grad():
            kernel = bilinear_kernel(self.stride)
            self.deconv.weight.copy_(kernel.view(1, 1, *kernel.shape))

    def forward(self, coarse: torch.Tensor) -> torch.Tensor:
        """Upsample B x 1 x h x w to B x 1 x (h*s) x (w*s)."""
        return self.deconv(coarse)


MEMO_SIZE = 32
"""How many token batches :meth:`ExpressionEncoder.remember` keeps."""


class ExpressionEncoder(nn.Module):
    """Word embedding + LSTM; the final hidden state, L2-normalised, encodes the expression.

    Tokens are left-padded with ``<pad>`` (id 0), so the LSTM's last step reads the last word.
    ``learned_pad``: ``<pad>`` has a learned embedding row, as in the released code (else it embeds
    to zeros). ``forget_bias``: the forget gate's initial bias (the released ``BasicLSTMCell``
    adds 1.0; PyTorch's two bias vectors then hold it once, in ``bias_ih``).
    """

    def __init__(self, vocab_size: int, embed_dim: int, text_dim: int, *,
                 learned_pad: bool = False, forget_bias: float = 0.0) -> None:
        """Build the embedding and the LSTM."""
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim,
                                      padding_idx=None if learned_pad else 0)
        self.lstm = nn.LSTM(embed_dim, text_dim, batch_first=True)
        self.forget_bias = float(forget_bias)
        if self.forget_bias:
            self.set_forget_bias(self.forget_bias)
        self.memo: dict | None = None

    def remember(self, size: int = MEMO_SIZE) -> None:
        """Keep the vectors of up to ``size`` token batches seen without gradients.

        A robot's command stays the same for many frames, and a relation encodes its landmark
        too: with this on, each frame after the first skips the embedding and the LSTM (1-3 ms
        a frame on 2 CPU cores). For a network that no longer trains (``Segmenter`` turns it
        on); ``forget`` turns it off. Only CPU tokens are remembered (reading GPU ones as a
        key would wait for the GPU). When ``size`` are kept, the next new batch starts the
        memory afresh (a robot's commands are few; no eviction order to keep).
        """
        self.memo = {}
        self._memo_size = int(size)

    def forget(self) -> None:
        """Stop remembering (:meth:`remember`) and drop what was kept."""
        self.memo = None

    def set_forget_bias(self, value: float) -> None:
        """Set the forget-gate bias to ``value`` (PyTorch's gate order is i, f, g, o)."""
        hidden = self.lstm.hidden_size
        with torch.no_grad():
            self.lstm.bias_ih_l0[hidden:2 * hidden].fill_(value)
            self.lstm.bias_hh_l0[hidden:2 * hidden].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Return B x Dtext unit vectors for B x T token ids.

        The LSTM runs in float32 outside any autocast, in training and inference alike: it is
        a few hundred FLOPs per word, its recurrence is where low precision hurts, and oneDNN
        has no bf16 LSTM on CPUs without native bf16 (AVX2 only), where it would fail.
        """
        key = None
        if self.memo is not None and tokens.device.type == "cpu" and not self.training \
                and not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            key = (tuple(tokens.shape), tokens.numpy().tobytes())
            if key in self.memo:
                return self.memo[key]
        embedded = self.embedding(tokens).float()
        # No autocast exists on some devices (``meta``, where FLOPs are counted): nothing to leave.
        no_autocast = torch.autocast(device_type=tokens.device.type, enabled=False) \
            if torch.amp.is_autocast_available(tokens.device.type) else contextlib.nullcontext()
        with no_autocast:
            _, (hidden, _) = self.lstm(embedded)
        encoded = F.normalize(hidden[-1], dim=1)
        if key is not None:
            if len(self.memo) >= self._memo_size:
                self.memo.clear()
            self.memo[key] = encoded
        return encoded


class Classifier(nn.Module):
    """Two 1x1 convolutions (Dcls hidden channels, ReLU) -> one response channel."""

    def __init__(self, in_channels: int, cls_dim: int) -> None:
        """Build the two layers."""
        super().__init__()
        self.mlp1 = nn.Conv2d(in_channels, cls_dim, kernel_size=1)
        self.mlp2 = nn.Conv2d(cls_dim, 1, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Return B x 1 x h x w logits."""
        return self.mlp2(F.relu(self.mlp1(features)))


class RelationalContext(nn.Module):
    """A second reasoning step over the classifier's text-conditioned hidden map.

    The paper's classifier is two 1x1 convolutions: each location is judged from its own
    features, its coordinates and the expression, never from the others. "The jar on the left",
    "the bigger ball" and "the cup next to the bowl" are about the other objects too (the error
    analysis of docs/RESULTS.md: the shipped model marked every look-alike). This block lets each
    location see the whole map: the hidden map reduced to ``dim`` channels goes through 3x3
    convolutions dilated 1, 2, 4 and 8 (a receptive field of 31 cells, the whole 40 x 30 map of
    a 320 x 240 input at stride 8), joined by the map's global max and mean; a 1x1 convolution
    maps the result back and adds it to the hidden map. That convolution starts at zero, so a
    network warm-started from weights trained without the block answers exactly as before.
    """

    def __init__(self, channels: int, dim: int = 64) -> None:
        """Build the block for a hidden map of ``channels`` channels."""
        super().__init__()
        self.reduce = nn.Conv2d(channels, dim, 1)
        self.context = nn.ModuleList(
            nn.Conv2d(dim, dim, 3, padding=d, dilation=d) for d in (1, 2, 4, 8))
        self.pooled = nn.Linear(2 * dim, dim)
        self.out = nn.Conv2d(2 * dim, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, hidden: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        """Return the hidden map with the context added (same shape).

        ``extra`` (B x dim x h x w, optional) is added to the reduced map before the
        dilated convolutions: what :class:`LandmarkGrounding` says about the landmark.
        """
        x = self.reduce(hidden)
        x = F.relu(x if extra is None else x + extra)
        for conv in self.context:
            x = F.relu(conv(x))
        pooled = F.relu(self.pooled(torch.cat([x.amax(dim=(2, 3)), x.mean(dim=(2, 3))], dim=1)))
        pooled = pooled[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return F.relu(hidden + self.out(torch.cat([x, pooled], dim=1)))


LANDMARK_SPLIT_WORDS = ("to", "of", "behind", "beside", "near")
"""The words after which a relation's landmark is named: "next *to*", "left *of*", "in front
*of*", "*behind*", "*beside*", "*near*". The landmark is what follows the last of them."""


def landmark_words(expression: str) -> str:
    """Return the words of ``expression`` that name its landmark ("" when it names none)."""
    words = tokenize(expression)
    last = max((i for i, w in enumerate(words) if w in LANDMARK_SPLIT_WORDS), default=-1)
    return " ".join(words[last + 1:]) if last >= 0 else ""


class LandmarkGrounding(nn.Module):
    """Ground a relation's landmark on its own and tell the reasoning step where it is.

    One sentence vector has to carry both the target and the landmark of "the cup next to the
    blue bowl", and the error analysis of ``docs/RESULTS.md`` showed the model grounding the
    noun and not checking the landmark (another cup picked, and "found" answered for a relation
    to a bowl that is not there). Here the landmark's words (those after the last word of
    :data:`LANDMARK_SPLIT_WORDS`; none: no landmark) go through the same expression encoder,
    classifier and context block as a command of their own ("the blue bowl", a kind the
    network grounds well), and the landmark's probability map becomes :data:`CHANNELS`
    channels at each location: the map itself, a landmark near (within 3 cells), somewhere to
    the left / right / above / below in the picture (cumulative maxima), the landmark's peak
    over the whole map (is it there at all?) and a flag saying the command has a landmark. A
    1x1 convolution, zero at the start (a warm start answers exactly as before), adds them to
    the reasoning step's input (:class:`RelationalContext`).

    :attr:`peaks` (an identity, no weights) receives the landmark's peak probability of each
    row of the batch (-1: the command names no landmark): a forward hook on it tells the caller
    whether the landmark is in the picture at all (``Segmenter``'s found rule: "the cup next to
    the yellow bowl" with no yellow bowl is "not found").
    """

    CHANNELS = 8

    def __init__(self, dim: int, split_ids: list[int]) -> None:
        """Build the block; ``split_ids``: the vocabulary ids of the split words."""
        super().__init__()
        self.register_buffer("split_ids", torch.tensor(sorted(split_ids), dtype=torch.long),
                             persistent=False)
        self.inject = nn.Conv2d(self.CHANNELS, dim, 1)
        nn.init.zeros_(self.inject.weight)
        nn.init.zeros_(self.inject.bias)
        self.peaks = nn.Identity()

    def split(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the landmark's tokens (left-padded, B x T) and which rows have one (B)."""
        steps = torch.arange(tokens.shape[1], device=tokens.device)
        is_split = torch.isin(tokens, self.split_ids)
        last = torch.where(is_split, steps, -1).amax(dim=1)
        has = (last >= 0) & (last < tokens.shape[1] - 1)
        return torch.where(steps[None] > last[:, None], tokens, 0), has

    @staticmethod
    def channels(prob: torch.Tensor) -> torch.Tensor:
        """Return the B x 8 x h x w channels of a B x 1 x h x w landmark probability map."""
        right = prob.flip(-1).cummax(-1).values.flip(-1)  # a landmark here or to the right
        below = prob.flip(-2).cummax(-2).values.flip(-2)
        return torch.cat([prob, F.max_pool2d(prob, 7, stride=1, padding=3),
                          prob.cummax(-1).values, right, prob.cummax(-2).values, below,
                          prob.amax(dim=(2, 3), keepdim=True).expand_as(prob),
                          torch.ones_like(prob)], dim=1)


def _conv3x3_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SkipDecoder(nn.Module):
    """Refine the coarse response map with the backbone's stride-4 and stride-2 features.

    The classifier's hidden map (text-conditioned, at the output stride) is reduced to ``dim``
    channels, upsampled to stride 4 and concatenated with the backbone's stride-4 features, a
    3x3 convolution mixes them; the same again at stride 2 (``dim / 2`` channels); a 1x1
    convolution gives a correction added to the bilinearly upsampled response map, and the
    sum is upsampled bilinearly to the input size. The correction starts at zero, so an
    untrained decoder reproduces the bilinear upsampling of the coarse map.
    """

    def __init__(self, hidden_dim: int, skip_channels: dict[int, int], dim: int) -> None:
        """Build the layers for ``skip_channels`` = ``{4: C4, 2: C2}``."""
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(hidden_dim, dim, 1), nn.ReLU(inplace=True))
        self.refine4 = _conv3x3_bn_relu(dim + skip_channels[4], dim)
        self.refine2 = _conv3x3_bn_relu(dim + skip_channels[2], dim // 2)
        self.out = nn.Conv2d(dim // 2, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, hidden: torch.Tensor, coarse: torch.Tensor,
                skips: dict[int, torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Return B x 1 x H x W logits at the input ``size``."""
        x = self.reduce(hidden)
        x = self.refine4(torch.cat([self._up(x, skips[4]), skips[4]], dim=1))
        x = self.refine2(torch.cat([self._up(x, skips[2]), skips[2]], dim=1))
        logits = self.out(x) + self._up(coarse, x)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class TextObjSegModel(nn.Module):
    """Segmentation from a natural language expression (Hu, Rohrbach, Darrell, 2016)."""

    def __init__(self, cfg: ModelConfig, vocabulary: list[str] | None = None) -> None:
        """Build every part from ``cfg``; ``cfg.vocab_size`` must be set (:func:`build_model`).

        ``vocabulary`` (the words, in id order) is needed by ``context: landmark`` only.
        """
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ConfigError("ModelConfig.vocab_size must be set: build_model(cfg, vocab_size)")
        self.config = cfg
        self.stride = cfg.stride
        self.backbone = build_backbone(cfg)
        self.expression_encoder = ExpressionEncoder(
            cfg.vocab_size, cfg.embed_dim, cfg.text_dim, learned_pad=cfg.learned_pad,
            forget_bias=cfg.lstm_forget_bias)
        product = cfg.feat_dim if cfg.fusion == "concat_product" else 0
        self.classifier = Classifier(cfg.feat_dim + cfg.spatial_channels + cfg.text_dim + product,
                                     cfg.cls_dim)
        self.context = RelationalContext(cfg.cls_dim) if cfg.context != "none" else None
        self.landmark = None
        if cfg.context == "landmark":
            if vocabulary is None or len(vocabulary) != cfg.vocab_size:
                raise ConfigError("context landmark needs the vocabulary: build_model(cfg, "
                                  "vocabulary=words)")
            ids = [i for i, word in enumerate(vocabulary) if word in LANDMARK_SPLIT_WORDS]
            if not ids:
                raise ConfigError(f"context landmark: the vocabulary has none of the relation "
                                  f"words {LANDMARK_SPLIT_WORDS}")
            self.landmark = LandmarkGrounding(self.context.reduce.out_channels, ids)
        if cfg.decoder == "skip":
            taps = {stride: channels for stride, channels in self.backbone.taps.values()}
            if 4 not in taps or 2 not in taps or cfg.stride < 8:
                raise ConfigError(f"decoder skip needs backbone features at strides 4 and 2 and "
                                  f"an output stride >= 8; {cfg.backbone} at stride {cfg.stride} "
                                  f"has {sorted(taps)}")
            self.decoder = SkipDecoder(cfg.cls_dim, taps, cfg.decoder_dim)
            self.upsample = None
        else:
            self.decoder = None
            self.upsample = BilinearDeconv(cfg.stride)
        if cfg.freeze_backbone:
            for param in self.backbone.body.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> TextObjSegModel:
        """Set training mode; a frozen backbone body stays in eval mode (BatchNorm fixed)."""
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.body.eval()
        return self

    def _check_inputs(self, images: torch.Tensor, tokens: torch.Tensor,
                      image_index: torch.Tensor | None = None) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be B x 3 x H x W, got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height % self.stride or width % self.stride:
            raise ValueError(f"image size {height}x{width} is not a multiple of the stride "
                             f"{self.stride}; letterbox it to {self.config.input_height}x"
                             f"{self.config.input_width} (refseg_model.preprocess.letterbox)")
        if image_index is not None:
            if image_index.shape != tokens.shape[:1] or tokens.dim() != 2:
                raise ValueError(f"image_index must have one entry per expression: tokens "
                                 f"{tuple(tokens.shape)}, image_index "
                                 f"{tuple(image_index.shape)}")
        elif tokens.dim() != 2 or tokens.shape[0] != images.shape[0]:
            raise ValueError(f"tokens must be B x T with B = {images.shape[0]}, got shape "
                             f"{tuple(tokens.shape)}")

    def response_map(self, images: torch.Tensor, tokens: torch.Tensor,
                     image_index: torch.Tensor | None = None) -> torch.Tensor:
        """Return the coarse response map logits, B x 1 x H/s x W/s.

        ``image_index`` (B longs) pairs expression ``b`` with image ``image_index[b]``: the
        backbone runs once per image however many expressions refer into it.
        """
        self._check_inputs(images, tokens, image_index)
        features = self.backbone(images)
        if image_index is not None:
            features = features[image_index]
        return self.classifier.mlp2(self._hidden(features, tokens))

    def _hidden(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Return the classifier's hidden map (after the relational context, when there is one)."""
        hidden = self._classifier_hidden(features, tokens)
        if self.context is None:
            return hidden
        extra = None if self.landmark is None else self._landmark_input(features, tokens)
        return self.context(hidden, extra)

    def _landmark_input(self, features: torch.Tensor, tokens: torch.Tensor
                        ) -> torch.Tensor | None:
        """Return what :class:`LandmarkGrounding` adds to the context's input (None: nothing).

        Only the rows whose command names a landmark pay for its second pass.
        """
        landmark_tokens, has = self.landmark.split(tokens)
        rows = has.nonzero().squeeze(1)
        if rows.numel() == 0:
            return None
        hidden = self._classifier_hidden(features[rows], landmark_tokens[rows])
        prob = torch.sigmoid(self.classifier.mlp2(self.context(hidden)).float())
        self.landmark.peaks(prob.new_full((tokens.shape[0],), -1.0).index_copy(
            0, rows, prob.amax(dim=(1, 2, 3))))
        channels = self.landmark.channels(prob)
        full = channels.new_zeros((tokens.shape[0], *channels.shape[1:]))
        full = full.index_copy(0, rows, channels)
        return self.landmark.inject(full.to(features.dtype))

    def _classifier_hidden(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Return ``relu(classifier.mlp1(_fused(features, tokens)))`` without the fused map.

        ``mlp1`` is a 1x1 convolution, so it splits over the parts of [visual, spatial, text,
        visual * text * D]: the text part is one vector per row (a bias), the spatial part one
        map per feature-map shape, and the visual and product parts fold into one weight per
        row over the visual channels, ``W_v v + W_p (v * t * D) = (W_v + W_p diag(t D)) v``.
        The same function (to rounding) and the same parameters, with a third of the
        multiply-adds of the ``concat_product`` layer and no concatenated map of 2D + 8
        channels at every location. The result is channels-last in memory.
        """
        visual = F.normalize(features, dim=1)
        batch, channels, height, width = visual.shape
        text = self.expression_encoder(tokens)
        weight = self.classifier.mlp1.weight.flatten(1)
        n_spatial = self.config.spatial_channels
        w_visual = weight[:, :channels]
        w_spatial = weight[:, channels:channels + n_spatial]
        w_text = weight[:, channels + n_spatial:channels + n_spatial + text.shape[1]]
        if self.config.fusion == "concat_product":
            w_product = weight[:, channels + n_spatial + text.shape[1]:]
            per_row = w_visual + w_product * (text * channels)[:, None, :]  # B x O x C
        else:
            per_row = w_visual.expand(batch, -1, -1)
        offset = (text.to(weight.dtype) @ w_text.t() + self.classifier.mlp1.bias)[:, None, :]
        if n_spatial:
            spatial = spatial_coordinates(height, width, self.config.spatial).to(weight)
            offset = offset + (spatial.flatten(1).t() @ w_spatial.t())[None]  # B x HW x O
        rows = visual.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        out = torch.baddbmm(offset.to(rows.dtype), rows, per_row.transpose(1, 2).to(rows.dtype))
        return F.relu(out.view(batch, height, width, -1).permute(0, 3, 1, 2))

    def _fused(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Return [visual, spatial, tiled text (, visual * text)] at each location."""
        visual = F.normalize(features, dim=1)
        batch, _, height, width = visual.shape
        parts = [visual]
        if self.config.spatial_channels:
            spatial = spatial_coordinates(height, width, self.config.spatial)
            parts.append(spatial.to(visual).unsqueeze(0).expand(batch, -1, -1, -1))
        text = self.expression_encoder(tokens).view(batch, -1, 1, 1)
        parts.append(text.expand(-1, -1, height, width))
        if self.config.fusion == "concat_product":
            # Both vectors are unit length, so each product term is ~1/D: scale it back to ~1.
            parts.append(visual * text * visual.shape[1])
        return torch.cat(parts, dim=1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, *,
                stage: str = "highres", return_coarse: bool = False,
                image_index: torch.Tensor | None = None):
        """Return logits: ``lowres`` B x 1 x H/s x W/s, ``highres`` B x 1 x H x W.

        With ``return_coarse`` (stage ``highres``), return ``(highres, coarse)`` logits: the
        coarse response map too, for deep supervision. ``image_index``: as in
        :meth:`response_map` (B is then the number of expressions).
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose one of {STAGES}")
        if stage == "lowres" or self.decoder is None:
            coarse = self.response_map(images, tokens, image_index)
            if stage == "lowres":
                return coarse
            fine = self.upsample(coarse)
        else:
            self._check_inputs(images, tokens, image_index)
            features, skips = self.backbone.forward_with_skips(images)
            if image_index is not None:
                features = features[image_index]
                skips = {stride: x[image_index] for stride, x in skips.items()}
            hidden = self._hidden(features, tokens)
            coarse = self.classifier.mlp2(hidden)
            fine = self.decoder(hidden, coarse, skips, images.shape[-2:])
        return (fine, coarse) if return_coarse else fine

    def predict_logits(self, images: torch.Tensor, tokens: torch.Tensor, *,
                       stage: str = "highres") -> torch.Tensor:
        """Return B x 1 x H x W logits; a ``lowres`` model's map is upsampled bilinearly."""
        if stage == "highres":
            return self.forward(images, tokens, stage="highres")
        coarse = self.forward(images, tokens, stage="lowres")
        return F.interpolate(coarse, size=images.shape[-2:], mode="bilinear",
                             align_corners=False)


def build_model(cfg: ModelConfig, vocab_size: int | None = None, *,
                vocabulary: list[str] | None = None) -> TextObjSegModel:
    """Return the network described by ``cfg`` for a vocabulary of ``vocab_size`` words.

    ``cfg`` is not changed: the network's own ``config`` is a copy with ``vocab_size`` set.
    ``vocab_size=None`` takes ``cfg.vocab_size`` (a configuration read from a checkpoint), or
    the length of ``vocabulary`` (the words; ``context: landmark`` needs them).
    """
    if vocab_size is None and vocabulary is not None:
        vocab_size = len(vocabulary)
    if vocab_size is not None:
        cfg = dataclasses.replace(cfg, vocab_size=int(vocab_size))
    return TextObjSegModel(cfg, vocabulary)


EMBEDDING_WEIGHT = "expression_encoder.embedding.weight"


def parameter_groups(model: nn.Module, weight_decay: float, backbone_lr_mult: float = 1.0,
                     lr: float = 1.0, embedding_decay: bool = True) -> list[dict]:
    """Split trainable parameters for SGD: weight decay on weights only (not biases, not BN).

    ``embedding_decay=False`` keeps the word embedding out of weight decay too (the released
    code). Backbone parameters get ``lr * backbone_lr_mult``. Each group has an ``initial_lr``.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.dim() > 1  # conv / linear / LSTM / embedding weights; not biases or BN
        if name == EMBEDDING_WEIGHT and not embedding_decay:
            decay = False
        in_backbone = name.startswith("backbone.")
        groups.setdefault((decay, in_backbone), []).append(param)
    result = []
    for (decay, in_backbone), params in sorted(groups.items()):
        group_lr = lr * (backbone_lr_mult if in_backbone else 1.0)
        result.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                       "lr": group_lr, "initial_lr": group_lr})
    return result
