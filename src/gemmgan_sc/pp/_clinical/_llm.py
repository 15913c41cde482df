"""Template facts -> a paragraph written by a local causal language model (transformers text-generation)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..._settings import settings

DEFAULT_PROMPT = (
    "You are a pathologist writing a clinical description of a cancer patient for a research data set. "
    "Using only the facts below, write one paragraph of about 200 words that covers the primary site, the "
    "patient's demographics and the diagnosis, then stage, grade, treatment and outcome where they are given. "
    "Do not invent facts.\n\nFacts: {facts}\n\nDescription:"
)


def _local_pipeline(path: str, device: str | None):
    """A greedy text-generation pipeline of the model and tokenizer saved in ``path`` (left padding)."""
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"method='llm' needs model= a local folder with a causal language model and its tokenizer "
            f"(save_pretrained); {path!r} is not a folder. A transformers pipeline object works too."
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    dev = settings.resolve_device(device)
    lm = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    gen = pipeline("text-generation", model=lm, tokenizer=tok, device=dev)
    if gen.tokenizer.pad_token is None:
        gen.tokenizer.pad_token = gen.tokenizer.eos_token
    gen.tokenizer.padding_side = "left"
    return gen


def _run(model: Any, prompts: list[str], max_new_tokens: int, device: str | None, batch_size: int) -> list:
    kw = {"max_new_tokens": max_new_tokens, "do_sample": False, "return_full_text": False}
    if isinstance(model, (str, os.PathLike)):
        import torch

        gen = _local_pipeline(os.fspath(model), device)
        with torch.inference_mode():
            return gen(prompts, **kw, batch_size=batch_size)
    if callable(model):
        return model(prompts, **kw)
    raise TypeError(
        f"model must be a local folder (str/path) or a transformers text-generation pipeline, got {type(model).__name__}."
    )


def _generated_text(out: Any) -> str:
    while isinstance(out, list) and out:
        out = out[0]
    text = out.get("generated_text", "") if isinstance(out, Mapping) else out
    return re.sub(r"\s+", " ", str(text)).strip()


def llm_generate(
    facts: list[str], model: Any, prompt: str, max_new_tokens: int, device: str | None, batch_size: int
) -> list[str]:
    """One generated text per entry of ``facts`` (the template descriptions), whitespace collapsed."""
    if "{facts}" not in prompt:
        raise ValueError("prompt must contain '{facts}' where the facts of each record go.")
    prompts = [prompt.format(facts=t) for t in facts]
    texts = [_generated_text(o) for o in _run(model, prompts, max_new_tokens, device, batch_size)]
    if len(texts) != len(prompts):
        raise RuntimeError(f"The language model returned {len(texts)} texts for {len(prompts)} prompts.")
    return texts


def rewrite(texts: list[str], model: Any, prompt: str, max_new_tokens: int, device: str | None, batch_size: int) -> int:
    """Replace each non-empty text in place by the model's paragraph; returns how many got nothing (kept as is)."""
    todo = [i for i, t in enumerate(texts) if t]
    if not todo:
        return 0
    kept = 0
    for i, g in zip(todo, llm_generate([texts[i] for i in todo], model, prompt, max_new_tokens, device, batch_size)):
        if g:
            texts[i] = g
        else:
            kept += 1
    return kept
