"""Tiny causal LMs built locally, for tests and the offline default config.

No model can be downloaded here (DESIGN.md section 6), so code paths that need a
causal LM (the ``hf`` backend, autoregressive routers) run on a tiny Qwen2 whose
tokenizer is trained on the spot. The tokenizer is trained with exactly the
pipeline ``Qwen2Tokenizer`` rebuilds on load (NFC, Qwen2's pre-tokenizer regex,
byte-level); with any other pre-tokenizer the ids change after a reload.

The weights are random (seeded): the model answers with noise, which is what a
test of plumbing needs and all the offline demo claims.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from codyn.io import honour_umask

TINY_NAMES = ("tiny-qwen2",)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# ChatML, as Qwen2 uses; generation stops at <|im_end|>.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Text the default tokenizer learns from: code, prose and the ranking strings that
# autoregressive routers emit ("0,1,2,3,4").
DEFAULT_VOCAB_TEXTS = (
    "def solve(n):\n    total = 0\n    for i in range(n):\n        if i % 2 == 0:\n"
    "            total += i\n    return total\n",
    "public int add(int a, int b) { return a + b; }\n",
    'public static void Main(string[] args) { Console.WriteLine("hi"); }\n',
    "import sys\nline = sys.stdin.readline().strip()\nprint(int(line) * 2)\n",
    "Tell me if the following python code has vulnerability or not. Use only Yes or No.\n",
    "Provide a fix for the buggy function. Translate the following code from Java to C#.\n",
    "Given a task and code snippet, return the model ranking: 0,1,2,3,4 4,0,1,3,2 2,3,1,0,4\n",
    "Here is the solution. The answer is correct because the loop stops at the end.\n",
)
TINY_CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 1024,
}


def _train_tokenizer(texts, vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(BPE(unk_token=None, continuing_subword_prefix="", end_of_word_suffix=""))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def build_tiny_qwen2(
    path: str | Path, vocab_texts=None, seed: int = 0, vocab_size: int = 512
) -> Path:
    """Build a tiny Qwen2ForCausalLM + tokenizer and ``save_pretrained`` both to ``path``.

    Deterministic for a given ``seed`` and ``vocab_texts``; loads back with
    ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(path)``.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    trained = _train_tokenizer(vocab_texts or DEFAULT_VOCAB_TEXTS, vocab_size)
    model_json = json.loads(trained.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model_json["vocab"],
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
        **TINY_CONFIG,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(path)
    return path


def resolve_model_path(name_or_path: str, root: str | Path = "cache/models", seed: int = 0) -> str:
    """A local model folder for ``name_or_path``: tiny names are built once under ``root``."""
    if name_or_path not in TINY_NAMES:
        return name_or_path
    target = Path(root) / f"{name_or_path}-seed{seed}"
    if not (target / "config.json").is_file():
        # Build aside and rename, so a concurrent job never loads a half-written folder.
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        build_tiny_qwen2(tmp, seed=seed)
        honour_umask(tmp, directory=True)
        try:
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another job won the race
    return str(target)
