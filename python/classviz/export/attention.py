"""Attention probabilities as taps, for the attributions made for transformers
(attention rollout, gradient-weighted rollout): each self-attention of a ViT computes
its probabilities softmax(q·kᵀ/√d) explicitly and passes them through a module of its
own, which a tap can name. `expose(model)` does it for the families that have such a
point, and returns those modules' names in the model's order:

  torchvision  nn.MultiheadAttention (its ViT's encoder blocks) is replaced by the same
               computation written out, with the same parameters under the same names;
               the probabilities pass through `<attention>.probs`;
  timm         every attention with a `fused_attn` switch is switched to its explicit
               path, whose probabilities pass through its `attn_drop` (identity in eval);
  Hugging Face the model's attention function is replaced by eager attention whose
               probabilities pass through `<attention>.classviz_probs`.

A tap on one of them is laid out as `attention`: [N, heads, T, T] with rows that sum to
one, T the prefix tokens and the patch grid as a token tap has them.
"""

import math

import torch

# The name transformers knows classviz's attention function by.
HF_ATTENTION = "classviz_eager"


class ExplicitAttention(torch.nn.Module):
    """torch.nn.MultiheadAttention's self-attention (batch first, no mask) written out,
    with the same parameters under the same names, so that the probabilities are a
    tensor of the graph: they pass through `probs`."""

    def __init__(self, mha):
        super().__init__()
        self.num_heads = mha.num_heads
        self.embed_dim = mha.embed_dim
        self.batch_first = mha.batch_first
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj
        self.probs = torch.nn.Identity()

    def forward(self, query, key, value, need_weights=False, attn_mask=None, key_padding_mask=None, **_):
        if attn_mask is not None or key_padding_mask is not None:
            raise ValueError("classviz's explicit attention takes no mask")
        x = query if self.batch_first else query.transpose(0, 1)
        batch, tokens, _ = x.shape
        heads, width = self.num_heads, self.embed_dim // self.num_heads
        qkv = torch.nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(batch, tokens, 3, heads, width).permute(2, 0, 3, 1, 4).unbind(0)
        probs = self.probs(((q @ k.transpose(-2, -1)) / math.sqrt(width)).softmax(dim=-1))
        out = (probs @ v).transpose(1, 2).reshape(batch, tokens, self.embed_dim)
        out = self.out_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, (probs.mean(1) if need_weights else None)


def _self_attention_mhas(model):
    """torchvision's ViT encoder blocks' attentions: (parent, attribute, module)."""
    found = []
    for name, module in model.named_modules():
        child = getattr(module, "self_attention", None)
        if isinstance(child, torch.nn.MultiheadAttention) and child._qkv_same_embed_dim:
            found.append((module, "self_attention", f"{name}.self_attention" if name else "self_attention"))
    return found


def _hf_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
    """transformers' eager attention, its probabilities passed through the module's
    `classviz_probs` (attached on the first call)."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if not hasattr(module, "classviz_probs"):
        module.classviz_probs = torch.nn.Identity()
    probs = module.classviz_probs(probs)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def _hugging_face(model, shape):
    if not hasattr(model, "set_attn_implementation") or not hasattr(model, "config"):
        return False
    try:
        from transformers import AttentionInterface

        AttentionInterface.register(HF_ATTENTION, _hf_attention)
        model.set_attn_implementation(HF_ATTENTION)
    except Exception:
        return False
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    return True


def expose(model, shape):
    """Make `model`'s self-attentions pass their probabilities through modules of their
    own; their names, in the model's order (empty for a model with no attention classviz
    knows)."""
    for parent, attribute, _ in _self_attention_mhas(model):
        setattr(parent, attribute, ExplicitAttention(getattr(parent, attribute)))
    for module in model.modules():
        if hasattr(module, "fused_attn") and isinstance(getattr(module, "attn_drop", None), torch.nn.Module):
            module.fused_attn = False
    _hugging_face(model, shape)
    names = []
    for name, module in model.named_modules():
        if isinstance(module, ExplicitAttention):
            names.append(f"{name}.probs")
        elif hasattr(module, "fused_attn") and isinstance(getattr(module, "attn_drop", None), torch.nn.Module):
            names.append(f"{name}.attn_drop")
        elif isinstance(getattr(module, "classviz_probs", None), torch.nn.Identity):
            names.append(f"{name}.classviz_probs")
    return names


def readout(model, prefix):
    """How the head reads the tokens: "token" (the first prefix token, a class token)
    or "mean" (the mean of the patch tokens: no prefix, or a pooled timm model)."""
    pool = getattr(model, "global_pool", "token")
    if not prefix or (isinstance(pool, str) and pool in ("avg", "avgmax", "max", "")):
        return "mean"
    return "token"
