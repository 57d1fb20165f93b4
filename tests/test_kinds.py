"""The one taxonomy of parameter tensors, on every parameter of the project's models."""
from __future__ import annotations



from rmed_core import kinds

def test_every_parameter_of_the_project_models_has_a_known_kind():
    from rmed_core.models import CNN, TransformerClassifier, TransformerLM

    models = [TransformerLM(7, d_model=8, n_layers=2, n_heads=2, seq_len=4),
              TransformerLM(7, d_model=8, n_layers=1, n_heads=2, seq_len=4, tie_weights=True),
              TransformerClassifier(7, 3, d_model=8, n_layers=2, n_heads=2, seq_len=4),
              CNN(1, 10, width=2, size=8), CNN(3, 4, width=1, size=4, activation="tanh", pool="avg")]
    for model in models:
        for name, _ in model.named_parameters():
            kind = kinds.tensor_kind(name)
            assert kind in kinds.KINDS and kind != "other", name
            assert kind == kinds.tensor_kind(name, model), name  # the name agrees with the module's type
            assert kinds.tensor_role(name) == name.rsplit(".", 1)[-1]
    expected = {"tok.weight": "embedding", "pos.weight": "embedding", "blocks.0.attn.q.weight": "attention",
                "blocks.0.attn.k.bias": "attention", "blocks.0.attn.proj.weight": "attention",
                "blocks.1.ln1.weight": "LayerNorm", "blocks.0.fc.weight": "MLP", "blocks.0.out.bias": "MLP",
                "ln_f.weight": "LayerNorm", "head.weight": "output", "0.weight": "conv", "3.bias": "conv",
                "7.weight": "output", "whatever": "other"}
    assert {n: kinds.tensor_kind(n) for n in expected} == expected
