"""A Hugging Face Hub id (``bert-base-uncased``, ``FacebookAI/roberta-base``) to a model folder, through
``huggingface_hub`` and its cache.

Only the files we read are downloaded: ``config.json`` first (so an architecture we do not run is refused
before its weights are fetched), the safetensors weights (one file, or the index and its shards), and the
tokenizer files. A repository with only ``pytorch_model.bin`` is refused from its file list, before anything
is downloaded. Downloads land in huggingface_hub's cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``: ``models--ORG--NAME/snapshots/<commit>/…`` with ``refs/main`` naming the
commit), so a model fetched once works offline; with ``HF_HUB_OFFLINE=1`` (or no network) the cache is all
that is read. The environment is read at each call, not once at import, so a process can be pointed at
another cache.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from explorer.model.pretrained.adapter import UnsupportedModel
from explorer.model.pretrained.folder import (
    CONFIG_FILE,
    OTHER_FORMATS,
    PICKLE_FILES,
    WEIGHTS_FILE,
    WEIGHTS_INDEX,
    PretrainedUnavailable,
    read_json,
    weight_files,
)
from explorer.model.pretrained.registry import adapter_for
from explorer.text.pretrained_vocab import (
    BPE_FILES,
    SPECIAL_TOKENS_MAP,
    TOKENIZER_CONFIG,
    TOKENIZER_FILE,
    WORDPIECE_FILES,
)

# A repository id as the Hub spells it: NAME or ORG/NAME, letters, digits, "-", "_", ".".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_TRUE = {"1", "ON", "YES", "TRUE"}  # how huggingface_hub reads a boolean variable

Progress = Callable[[str], None]


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` can be a Hub model id (a folder that exists is a folder first: see ``loading``)."""
    return bool(_HUB_ID.fullmatch(text)) and ".." not in text and "--" not in text and not text.endswith(".git")


def cache_dir() -> Path:
    """huggingface_hub's cache folder, from the environment as it reads it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HF_HUB_CACHE"])).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.path.expandvars(os.environ["HUGGINGFACE_HUB_CACHE"])).expanduser()
    default_home = os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(os.path.expandvars(os.environ.get("HF_HOME") or default_home)).expanduser() / "hub"


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or transformers' ``TRANSFORMERS_OFFLINE``) is set: only the cache is read."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def cached_folder(repo_id: str) -> Path | None:
    """The cached snapshot of ``repo_id``'s main revision that holds its ``config.json``, or None."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, CONFIG_FILE, cache_dir=str(cache_dir()))
    return Path(found).parent if isinstance(found, str) else None


def _not_cached(repo_id: str, why: str) -> PretrainedUnavailable:
    return PretrainedUnavailable(
        f"{repo_id} is not in the Hugging Face cache ({cache_dir()}) and {why}: fetch it once with the network on, "
        "or give the folder it is in."
    )


def _wanted(files: dict[str, int | None], repo_id: str) -> list[str]:
    """The files of a repository we download, from its file list; a pickle-only repository is refused."""
    if WEIGHTS_FILE in files:
        weights = [WEIGHTS_FILE]
    elif WEIGHTS_INDEX in files:
        weights = [WEIGHTS_INDEX]  # its shards are read from it once it is here
    else:
        present = [name for name in PICKLE_FILES + OTHER_FORMATS if name in files]
        if any(name in PICKLE_FILES for name in present):
            raise UnsupportedModel(
                f"{repo_id} has only {present[0]}, a pickle, which can run code when it is loaded, so this app never "
                "opens it: use a repository or revision with model.safetensors, or convert it to safetensors."
            )
        raise PretrainedUnavailable(f"{repo_id} has no {WEIGHTS_FILE} on the Hugging Face Hub.")
    tokenizer = next(
        (names for names in ((TOKENIZER_FILE,), WORDPIECE_FILES, BPE_FILES) if all(n in files for n in names)), ()
    )
    extras = [name for name in (TOKENIZER_CONFIG, SPECIAL_TOKENS_MAP) if name in files]
    return weights + list(tokenizer) + extras


def _size(size: int | None) -> str:
    return "" if size is None else f" ({size / 2**20:.0f} MB)" if size >= 2**20 else f" ({size / 2**10:.0f} kB)"


def resolve(repo_id: str, progress: Progress | None = None) -> Path:
    """The local folder of a Hub model, downloading the files we read unless they are cached.

    Raises:
      PretrainedUnavailable: not on the Hub, or offline (``HF_HUB_OFFLINE``, no network) and not cached.
      UnsupportedModel: only pickled weights, or an architecture this app does not run.
    """
    report = progress or (lambda message: None)
    if not looks_like_hub_id(repo_id):
        raise ValueError(f"{repo_id!r} is neither a folder nor a Hugging Face Hub id (such as bert-base-uncased).")
    if offline():
        folder = cached_folder(repo_id)
        if folder is None:
            raise _not_cached(repo_id, "HF_HUB_OFFLINE is set")
        return folder
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo_id, files_metadata=True)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise PretrainedUnavailable(
            f"{repo_id} is not a model on the Hugging Face Hub, or it is private or gated (log in with `hf auth "
            "login` if you have access)."
        ) from error
    except Exception as error:  # noqa: BLE001 - no network, a proxy, a timeout: the cache may still have it
        folder = cached_folder(repo_id)
        if folder is None:
            raise _not_cached(repo_id, f"the Hub cannot be reached ({type(error).__name__})") from error
        return folder
    files = {sibling.rfilename: sibling.size for sibling in info.siblings or []}
    if CONFIG_FILE not in files:
        raise PretrainedUnavailable(f"{repo_id} has no {CONFIG_FILE}: it is not a transformers model.")

    def fetch(name: str) -> Path:
        report(f"Downloading {name}{_size(files.get(name))} from {repo_id}…")
        # The main revision by name (not info.sha): huggingface_hub then records refs/main, which is how the
        # cache finds this snapshot again offline.
        return Path(hf_hub_download(repo_id, name, cache_dir=str(cache_dir())))

    wanted = _wanted(files, repo_id)  # a pickle-only repository is refused before anything is fetched
    config_path = fetch(CONFIG_FILE)
    adapter_for(read_json(config_path))  # an architecture we do not run: refused before the weights are fetched
    for name in wanted:
        fetch(name)
    folder = config_path.parent
    if (folder / WEIGHTS_INDEX).is_file() and not (folder / WEIGHTS_FILE).is_file():
        index = read_json(folder / WEIGHTS_INDEX)
        for shard in dict.fromkeys((index.get("weight_map") or {}).values() if isinstance(index, dict) else ()):
            if isinstance(shard, str) and Path(shard).name == shard and shard in files:
                fetch(shard)
        weight_files(folder)  # every shard is here, or a clear refusal
    return folder
