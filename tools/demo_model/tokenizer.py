"""A CLIP-format BPE vocabulary (vocab.json + merges.txt) learnt from the domain's words.

Layout as openai CLIP's: the 256 byte symbols (bytes_to_unicode order), the same with "</w>", one entry per
merge, then <|startoftext|> and <|endoftext|> (the largest id, so argmax(ids) finds EOS as in CLIP).
The merges are learnt by plain BPE over the word list until every domain word is a single token; encoding
a training word with the merges in rank order reproduces the training segmentation, i.e. one token.
"""
import json
import re
from collections import Counter


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def learn_merges(words):
    seqs = {w: list(w[:-1]) + [w[-1] + "</w>"] for w in words}
    merges = []
    while True:
        pairs = Counter()
        for s in seqs.values():
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += 1
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out


class Tokenizer:
    def __init__(self, words):
        be = bytes_to_unicode()
        self.byte_enc = be
        self.merges = learn_merges(words)
        vocab = list(be.values())
        vocab += [v + "</w>" for v in vocab]
        vocab += [a + b for a, b in self.merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.bos, self.eos = self.vocab["<|startoftext|>"], self.vocab["<|endoftext|>"]

    def bpe(self, piece):
        s = [self.byte_enc[b] for b in piece.encode("utf-8")]
        s[-1] += "</w>"
        while len(s) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(s, s[1:]))]
            r, i = min(pairs)
            if r == 1 << 30:
                break
            s = s[:i] + [s[i] + s[i + 1]] + s[i + 2:]
        return [self.vocab[t] for t in s]

    def encode(self, text):
        ids = []
        for piece in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", " ".join(text.lower().split())):
            ids += self.bpe(piece)
        return ids

    def ids77(self, text):
        """SD 1.x padding: BOS + tokens (<= 75) + EOS, padded with EOS to 77."""
        ids = [self.bos] + self.encode(text)[:75] + [self.eos]
        return ids + [self.eos] * (77 - len(ids))

    def save(self, folder):
        with open(f"{folder}/vocab.json", "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        with open(f"{folder}/merges.txt", "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for a, b in self.merges:
                f.write(f"{a} {b}\n")
