"""Golden values for NNTests/TransformerParityTests: a tiny transformer block built from diffusers'
Attention and torch.nn layers, its output and the gradients of sum(out * r) with respect to the inputs and
every parameter (torch.autograd, float64 reference rounded to float32 storage).

Run: /root/refenv/bin/python Tests/Reference/nn_transformer_block.py
Writes Tests/NNTests/Fixtures/transformer_block.json (tensors as {"shape": [...], "data": [...]}).
The block (tokens [N, L, C], in the manner of diffusers' BasicTransformerBlock):
    h = x + attn1(norm1(x));  h = h + attn2(norm2(h), context);  h = h + ff_out(GEGLU(ff_proj(norm3(h))))
followed by a head on the tokens seen as an image [N, C, H, W]:  y = conv3x3(silu(groupnorm(h))).
"""
import json
import os

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention

torch.manual_seed(0)
N, H, W, C, CTX, LC, HEADS, F_ = 2, 2, 3, 8, 6, 5, 2, 12
L = H * W


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(C)
        self.attn1 = Attention(query_dim=C, heads=HEADS, dim_head=C // HEADS)
        self.norm2 = torch.nn.LayerNorm(C)
        self.attn2 = Attention(query_dim=C, cross_attention_dim=CTX, heads=HEADS, dim_head=C // HEADS)
        self.norm3 = torch.nn.LayerNorm(C)
        self.ff_proj = torch.nn.Linear(C, 2 * F_)
        self.ff_out = torch.nn.Linear(F_, C)
        self.gn = torch.nn.GroupNorm(4, C, eps=1e-6)
        self.conv = torch.nn.Conv2d(C, 4, 3, padding=1)

    def forward(self, x, context):
        h = x + self.attn1(self.norm1(x))
        h = h + self.attn2(self.norm2(h), encoder_hidden_states=context)
        a, gate = self.ff_proj(self.norm3(h)).chunk(2, dim=-1)
        h = h + self.ff_out(a * F.gelu(gate))
        img = h.transpose(1, 2).reshape(N, C, H, W)
        return self.conv(F.silu(self.gn(img)))


block = Block().double()
with torch.no_grad():
    for p in block.parameters():          # non-trivial norms (γ ≠ 1, β ≠ 0) and biases
        p.add_(0.1 * torch.randn_like(p))
x = torch.randn(N, L, C, dtype=torch.float64, requires_grad=True)
context = torch.randn(N, LC, CTX, dtype=torch.float64, requires_grad=True)
out = block(x, context)                   # [N, 4, H, W]
r = torch.randn_like(out)
(out * r).sum().backward()


def t(a):
    a = a.detach().float()
    return {"shape": list(a.shape), "data": [float(v) for v in a.flatten()]}


fixture = {
    "config": {"N": N, "H": H, "W": W, "C": C, "context": CTX, "contextLength": LC, "heads": HEADS, "ff": F_},
    "state_dict": {k: t(v) for k, v in block.state_dict().items()},
    "x": t(x), "context": t(context), "output": t(out), "projection": t(r),
    "grad_x": t(x.grad), "grad_context": t(context.grad),
    "grads": {k: t(p.grad) for k, p in block.named_parameters()},
}
path = os.path.join(os.path.dirname(__file__), "..", "NNTests", "Fixtures", "transformer_block.json")
with open(path, "w") as f:
    json.dump(fixture, f)
print("wrote", os.path.normpath(path), "output", list(out.shape))
