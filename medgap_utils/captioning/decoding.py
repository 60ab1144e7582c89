"""Greedy and beam-search decoding of a :class:`CaptionDecoder`.

Both are deterministic: no sampling, ties broken by the lower word id (as
``torch.topk`` and ``torch.argmax`` break them on CPU).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from medgap_utils.captioning.decoder import CaptionDecoder


@torch.no_grad()
def greedy_decode(
    decoder: CaptionDecoder,
    embeddings: torch.Tensor,
    *,
    eos_id: int,
    max_length: int,
    banned_ids: Sequence[int] = (),
) -> list[list[int]]:
    """Decode one caption per embedding, taking the most likely word at each step.

    Args:
        decoder: a decoder in eval mode.
        embeddings: (B, D) conditioning embeddings.
        eos_id: the end-of-caption id; decoding of a row stops there.
        max_length: decoding steps; a caption without ``<eos>`` by then is cut
            at ``max_length`` words.
        banned_ids: ids never generated (``<pad>``, ``<unk>``).

    Returns:
        B lists of word ids, without ``<eos>``.
    """
    batch = embeddings.shape[0]
    prefix = decoder.prefix(embeddings)
    tokens = torch.empty(batch, 0, dtype=torch.long, device=embeddings.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=embeddings.device)
    banned = list(banned_ids)

    for _ in range(max_length):
        logits = decoder.forward_prefix(prefix, tokens)[:, -1]
        if banned:
            logits[:, banned] = -math.inf
        next_ids = logits.argmax(dim=-1)
        next_ids = torch.where(finished, torch.full_like(next_ids, eos_id), next_ids)
        tokens = torch.cat([tokens, next_ids[:, None]], dim=1)
        finished |= next_ids == eos_id
        if bool(finished.all()):
            break

    return [_cut_at_eos(row, eos_id) for row in tokens.tolist()]


@torch.no_grad()
def beam_search(
    decoder: CaptionDecoder,
    embeddings: torch.Tensor,
    *,
    eos_id: int,
    max_length: int,
    beam_size: int = 3,
    length_penalty: float = 1.0,
    banned_ids: Sequence[int] = (),
) -> list[list[int]]:
    """Decode one caption per embedding with beam search.

    Each row keeps ``beam_size`` partial captions. A caption that ends with
    ``<eos>`` among the top ``beam_size`` candidates of a step is set aside.
    A row stops once ``beam_size`` captions have ended and no open caption
    scores better at its current length than the worst of them (or at
    ``max_length``, when the captions still open are cut there). The
    returned caption maximizes the summed log-probability divided by
    ``length ** length_penalty``, with ``<eos>`` counted in the length
    (0 ranks by total log-probability, which favours short captions).

    Args:
        decoder: a decoder in eval mode.
        embeddings: (B, D) conditioning embeddings.
        eos_id: the end-of-caption id.
        max_length: decoding steps; a caption without ``<eos>`` by then is cut
            at ``max_length`` words.
        beam_size: partial captions kept per row; 1 gives greedy decoding.
        length_penalty: exponent of the length normalization.
        banned_ids: ids never generated (``<pad>``, ``<unk>``).

    Returns:
        B lists of word ids, without ``<eos>``.
    """
    batch, beams = embeddings.shape[0], beam_size
    prefix = decoder.prefix(embeddings).repeat_interleave(beams, dim=0)
    tokens = torch.empty(batch * beams, 0, dtype=torch.long, device=embeddings.device)
    # Only the first beam of each row is live at the start, so the first step
    # does not pick the same word from identical beams.
    beam_scores = torch.full((batch, beams), -math.inf, device=embeddings.device)
    beam_scores[:, 0] = 0.0
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    banned = list(banned_ids)

    for step in range(max_length):
        logits = decoder.forward_prefix(prefix, tokens)[:, -1]
        if banned:
            logits[:, banned] = -math.inf
        log_probabilities = torch.log_softmax(logits.float(), dim=-1)
        vocabulary = log_probabilities.shape[-1]
        candidates = (beam_scores.reshape(-1, 1) + log_probabilities).reshape(batch, beams * vocabulary)
        top_scores, top_indices = candidates.topk(2 * beams, dim=1)

        next_origin = [[0] * beams for _ in range(batch)]
        next_words = [[eos_id] * beams for _ in range(batch)]
        next_scores = [[-math.inf] * beams for _ in range(batch)]
        length = step + 1
        top_scores_list, top_indices_list = top_scores.tolist(), top_indices.tolist()
        for row in range(batch):
            if done[row]:
                continue
            open_beams = 0
            for rank, (score, index) in enumerate(zip(top_scores_list[row], top_indices_list[row])):
                if score == -math.inf or open_beams == beams:
                    break
                origin, word = divmod(index, vocabulary)
                if word == eos_id:
                    if rank < beams:
                        ended[row].append((score / length**length_penalty, tokens[row * beams + origin].tolist()))
                    continue
                next_origin[row][open_beams] = origin
                next_words[row][open_beams] = word
                next_scores[row][open_beams] = score
                open_beams += 1
            if open_beams == 0 or _row_finished(ended[row], next_scores[row][:open_beams], beams, length, length_penalty):
                done[row] = True

        if step == max_length - 1 or all(done):
            _end_open_beams(ended, done, tokens, next_origin, next_words, next_scores, beams, length, length_penalty)
            break

        origin_rows = torch.tensor(
            [row * beams + origin for row in range(batch) for origin in next_origin[row]], device=tokens.device
        )
        words = torch.tensor([word for row in next_words for word in row], device=tokens.device)
        tokens = torch.cat([tokens[origin_rows], words[:, None]], dim=1)
        beam_scores = torch.tensor(next_scores, device=embeddings.device)

    return [max(row_ended, key=lambda item: item[0])[1] if row_ended else [] for row_ended in ended]


def _row_finished(
    ended: list[tuple[float, list[int]]], open_scores: list[float], beams: int, length: int, length_penalty: float
) -> bool:
    # The heuristic of common beam-search implementations: stop once
    # ``beams`` captions have ended and no open caption, scored at its current
    # length, beats the worst of the best ``beams`` ended ones.
    if len(ended) < beams:
        return False
    worst_kept = sorted((score for score, _ in ended), reverse=True)[beams - 1]
    return max(open_scores) / length**length_penalty <= worst_kept


def _end_open_beams(
    ended: list[list[tuple[float, list[int]]]],
    done: list[bool],
    tokens: torch.Tensor,
    next_origin: list[list[int]],
    next_words: list[list[int]],
    next_scores: list[list[float]],
    beams: int,
    length: int,
    length_penalty: float,
) -> None:
    # Captions still open at the length limit end there, cut without <eos>.
    for row, row_done in enumerate(done):
        if row_done and ended[row]:
            continue
        for origin, word, score in zip(next_origin[row], next_words[row], next_scores[row]):
            if score > -math.inf:
                ended[row].append((score / length**length_penalty, tokens[row * beams + origin].tolist() + [word]))


def _cut_at_eos(ids: list[int], eos_id: int) -> list[int]:
    return ids[: ids.index(eos_id)] if eos_id in ids else ids
